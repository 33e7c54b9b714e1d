package extauthz

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

// TestDynamicMetadataOff: with dynamic_metadata.enabled false a CheckResponse carries no
// dynamic metadata, and is otherwise the response the default config gives, for allows,
// denials and shadow reports alike.
func TestDynamicMetadataOff(t *testing.T) {
	keys := map[string]KeySource{"demo": newFakeKeys("ec256")}
	on := newPolicy(t, shadowRules, keys)
	off := newPolicy(t, shadowRules+"dynamic_metadata: {enabled: false}\n", keys)
	reader := bearer(sig.mint(t, "ES256", "ec256", nil))
	for _, req := range []envoyRequest{
		{path: "/api/x", headers: reader}, // allowed, with a shadow report
		{path: "/api/x"},                  // 401
		{path: "/legacy/y"},               // public
		{path: "/api/x", headers: bearer("not.a.token")},
	} {
		withMeta, d := check(t, on, req.proto())
		without, dOff := check(t, off, req.proto())
		if withMeta.GetDynamicMetadata() == nil {
			t.Errorf("Check(%s), default config: no dynamic metadata", req.path)
		}
		if without.GetDynamicMetadata() != nil {
			t.Errorf("Check(%s), dynamic_metadata off: metadata %v, want none", req.path, without.GetDynamicMetadata())
		}
		withMeta.DynamicMetadata = nil
		if !proto.Equal(withMeta, without) || d.Reason != dOff.Reason || d.ShadowDecision != dOff.ShadowDecision {
			t.Errorf("Check(%s): dynamic_metadata off answered\n%v (%s)\nwant, as with it on,\n%v (%s)", req.path, without, dOff.Reason, withMeta, d.Reason)
		}
	}
}
