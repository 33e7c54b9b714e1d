package extauthz

import (
	"context"

	"github.com/go-jose/go-jose/v4"
)

// KeySource holds the verification keys of one provider. Implementations must be safe for
// concurrent use; Lookup is called on the request path, so it must not do I/O except the
// bounded refetch that an unknown kid may trigger.
type KeySource interface {
	// Lookup returns the key whose kid equals kid exactly. For kid == "" it returns the only
	// key when the source holds exactly one, and found == false otherwise. A kid that is not
	// known (after whatever refetch the source allows itself) gives found == false and a nil
	// error. A non-nil error means the source cannot vouch for any key right now (never
	// loaded, or its keys are older than their max_stale): the caller fails closed with 503.
	Lookup(ctx context.Context, kid string) (key *jose.JSONWebKey, found bool, err error)
	// Ready reports whether Lookup can currently succeed for a known kid.
	Ready() bool
}
