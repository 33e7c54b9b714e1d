package extauthz

import (
	"errors"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
)

// request is the read-only view of a CheckRequest that the decision needs, read straight
// from the wire (parseRequest). It reads the header_map when Envoy sends one
// (encode_raw_headers: true) and the headers map otherwise, so no other code has to know
// which encoding arrived (envoy-extauthz.md §1, §6.6).
//
// Its strings point into the buffer it was parsed from, which nothing else writes. Nothing
// that outlives the request (the token cache above all) may keep one: identities hold only
// what was decoded from the token, never a slice of the request.
type request struct {
	http      bool   // attributes.request.http is present; false for Istio's TCP checks
	method    string // from the method field, else :method
	host      string // lower-case, without port or trailing dot
	path      string // without the query, as sent
	matchPath string // path normalised for rule matching
	query     string // raw query, without '?'
	// authority is the host as sent, with its port; scheme is HttpRequest.scheme. DPoP's
	// htu check (RFC 9449 §4.3) reads them.
	authority, scheme string

	// headers in arrival order. In the headers encoding (raw false) they are map entries:
	// lower-case names, Envoy has joined repeats with ",", and a repeated name means the
	// last entry wins, as protobuf decodes a map. In the header_map encoding repeats are kept.
	headers   []field
	raw       bool
	contextEx []field // context_extensions map entries; the last of a repeated key wins

	sourcePrincipal      string
	destinationPrincipal string
	// sourceCertificate is the client's certificate, URL-encoded PEM, when Envoy sends it
	// (include_peer_certificate: true); RFC 8705 binding reads it.
	sourceCertificate string
	// peerDigest answers the hex SHA-256 of the TLS client certificate's DER, when a face
	// reads it from the connection itself (Request.PeerCertificateDigest); nil otherwise.
	peerDigest func() string

	// What HttpRequest carried, before finish applies the fallbacks.
	wireMethod, wireHost, wirePath, wireQuery string
	mapHeaders, rawHeaders                    []field
	// buf backs the first header list, so a typical request is read with one allocation.
	buf     [32]field
	bufUsed bool
}

type field struct{ name, value string }

// header returns the first value of the named header (name in lower case) and how many
// entries carry that name. In the headers encoding Envoy has already joined repeated headers
// with "," so n is at most 1 there; callers that care look for the comma.
func (r *request) header(name string) (value string, n int) {
	if !r.raw {
		for i := len(r.headers) - 1; i >= 0; i-- {
			if r.headers[i].name == name {
				return r.headers[i].value, 1
			}
		}
		return "", 0
	}
	for _, h := range r.headers {
		if !strings.EqualFold(h.name, name) {
			continue
		}
		if n == 0 {
			value = h.value
		}
		n++
	}
	return value, n
}

// headerValues calls fn for every value of the named header, stopping when fn returns false.
func (r *request) headerValues(name string, fn func(string) bool) {
	if !r.raw {
		if v, n := r.header(name); n > 0 {
			fn(v)
		}
		return
	}
	for _, h := range r.headers {
		if strings.EqualFold(h.name, name) && !fn(h.value) {
			return
		}
	}
}

// contextExtension is context_extensions[key].
func (r *request) contextExtension(key string) (string, bool) {
	for i := len(r.contextEx) - 1; i >= 0; i-- {
		if r.contextEx[i].name == key {
			return r.contextEx[i].value, true
		}
	}
	return "", false
}

// requestID is x-request-id for log correlation (http.id is Envoy's stream id, not this).
func (r *request) requestID() string {
	v, _ := r.header("x-request-id")
	if len(v) > 128 {
		v = v[:128]
	}
	return v
}

// finish picks the header encoding and fills method, host and path, falling back to the
// pseudo-headers when the dedicated fields are empty.
func (r *request) finish() {
	r.headers = r.mapHeaders
	if r.raw {
		r.headers = r.rawHeaders
	}
	if !r.http {
		return
	}
	r.method = r.wireMethod
	if r.method == "" {
		r.method, _ = r.header(":method")
	}
	host := r.wireHost
	if host == "" {
		if host, _ = r.header(":authority"); host == "" {
			host, _ = r.header("host")
		}
	}
	// A fully qualified "api.example.com." names the same host as "api.example.com" (and
	// upstreams such as nginx treat it so); without the trim it would skip host rules.
	r.host = strings.TrimSuffix(hostWithoutPort(strings.ToLower(host)), ".")
	r.authority = host
	p := r.wirePath
	if p == "" {
		p, _ = r.header(":path")
	}
	r.path, r.query, _ = strings.Cut(p, "?")
	if i := strings.IndexByte(r.path, '#'); i >= 0 {
		r.path = r.path[:i]
	}
	if r.wireQuery != "" && r.query == "" { // never filled by Envoy, but a direct caller may
		r.query = r.wireQuery
	}
	r.matchPath = normalizePath(r.path)
}

func hostWithoutPort(h string) string {
	if strings.HasPrefix(h, "[") { // IPv6 literal
		if i := strings.IndexByte(h, ']'); i >= 0 {
			return h[:i+1]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		return h[:i]
	}
	return h
}

// errBadRequest: the CheckRequest is not valid protobuf where the decision reads it.
var errBadRequest = errors.New("extauthz: malformed CheckRequest")

// Field numbers of the CheckRequest parts the decision reads (external_auth.proto,
// attribute_context.proto, base.proto); a test checks them against the descriptors.
const (
	fieldCheckAttributes  = 1  // CheckRequest.attributes
	fieldAttrSource       = 1  // AttributeContext.source
	fieldAttrDestination  = 2  // AttributeContext.destination
	fieldAttrRequest      = 4  // AttributeContext.request
	fieldAttrContextExt   = 10 // AttributeContext.context_extensions
	fieldPeerPrincipal    = 4  // AttributeContext.Peer.principal
	fieldPeerCertificate  = 5  // AttributeContext.Peer.certificate
	fieldRequestHTTP      = 2  // AttributeContext.Request.http
	fieldHTTPMethod       = 2  // HttpRequest.method
	fieldHTTPHeaders      = 3  // HttpRequest.headers
	fieldHTTPPath         = 4  // HttpRequest.path
	fieldHTTPHost         = 5  // HttpRequest.host
	fieldHTTPScheme       = 6  // HttpRequest.scheme
	fieldHTTPQuery        = 7  // HttpRequest.query
	fieldHTTPHeaderMap    = 13 // HttpRequest.header_map
	fieldHeaderMapHeaders = 1  // HeaderMap.headers
	fieldHeaderKey        = 1  // HeaderValue.key
	fieldHeaderValue      = 2  // HeaderValue.value
	fieldHeaderRawValue   = 3  // HeaderValue.raw_value
	fieldMapEntryKey      = 1  // map entry key
	fieldMapEntryValue    = 2  // map entry value
)

// parseRequest reads a serialized CheckRequest. Only the fields the decision uses are
// decoded and no map is built: the strings alias b, so b must not change afterwards.
//
// It follows protobuf's decoding rules for those fields, so it sees what proto.Unmarshal
// would: a repeated message field merges into one, the last of a repeated scalar or map
// key wins, a field with an unexpected wire type is skipped as unknown, and a string that
// is not UTF-8 is an error. Fields it does not read are skipped without being validated.
func parseRequest(b []byte) (*request, error) {
	r := &request{}
	if err := r.parse(b); err != nil {
		return nil, err
	}
	return r, nil
}

// requests recycles the request views of AppendCheck: at 1.4 KiB one per check was nearly
// all a cached check allocated, and the collector then ran every few thousand checks,
// marking the whole token cache each time.
var requests = sync.Pool{New: func() any { return new(request) }}

// parse fills the zero request r from b (see parseRequest).
func (r *request) parse(b []byte) error {
	err := eachBytesField(b, func(num protowire.Number, v []byte) error {
		if num == fieldCheckAttributes {
			return r.parseAttributes(v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.finish()
	return nil
}

func (r *request) parseAttributes(b []byte) error {
	return eachBytesField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case fieldAttrSource:
			return parsePeer(v, &r.sourcePrincipal, &r.sourceCertificate)
		case fieldAttrDestination:
			return parsePeer(v, &r.destinationPrincipal, nil)
		case fieldAttrRequest:
			return eachBytesField(v, func(num protowire.Number, v []byte) error {
				if num != fieldRequestHTTP {
					return nil
				}
				r.http = true
				return r.parseHTTP(v)
			})
		case fieldAttrContextExt:
			k, val, err := parseMapEntry(v)
			r.contextEx = append(r.contextEx, field{k, val})
			return err
		}
		return nil
	})
}

// parsePeer reads a Peer's principal, and its certificate when cert is not nil.
func parsePeer(b []byte, principal, cert *string) error {
	return eachBytesField(b, func(num protowire.Number, v []byte) error {
		switch {
		case num == fieldPeerPrincipal:
			return stringOf(v, principal)
		case num == fieldPeerCertificate && cert != nil:
			return stringOf(v, cert)
		}
		return nil
	})
}

func (r *request) parseHTTP(b []byte) error {
	return eachBytesField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case fieldHTTPMethod:
			return stringOf(v, &r.wireMethod)
		case fieldHTTPPath:
			return stringOf(v, &r.wirePath)
		case fieldHTTPHost:
			return stringOf(v, &r.wireHost)
		case fieldHTTPScheme:
			return stringOf(v, &r.scheme)
		case fieldHTTPQuery:
			return stringOf(v, &r.wireQuery)
		case fieldHTTPHeaders:
			k, val, err := parseMapEntry(v)
			r.mapHeaders = append(r.grow(r.mapHeaders), field{k, val})
			return err
		case fieldHTTPHeaderMap:
			r.raw = true
			return eachBytesField(v, func(num protowire.Number, v []byte) error {
				if num != fieldHeaderMapHeaders {
					return nil
				}
				h, err := parseHeaderValue(v)
				r.rawHeaders = append(r.grow(r.rawHeaders), h)
				return err
			})
		}
		return nil
	})
}

// grow gives the first header list to be filled the request's own buffer.
func (r *request) grow(list []field) []field {
	if list == nil && !r.bufUsed {
		r.bufUsed = true
		return r.buf[:0]
	}
	return list
}

// parseHeaderValue reads a HeaderValue; raw_value, when not empty, is the value (Envoy
// fills it instead of value with encode_raw_headers).
func parseHeaderValue(b []byte) (field, error) {
	var h field
	var rawValue []byte
	err := eachBytesField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case fieldHeaderKey:
			return stringOf(v, &h.name)
		case fieldHeaderValue:
			return stringOf(v, &h.value)
		case fieldHeaderRawValue:
			rawValue = v
		}
		return nil
	})
	if len(rawValue) > 0 {
		h.value = unsafe.String(&rawValue[0], len(rawValue))
	}
	return h, err
}

// parseMapEntry reads one entry of a map<string, string>; a missing key or value is "".
func parseMapEntry(b []byte) (key, value string, err error) {
	err = eachBytesField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case fieldMapEntryKey:
			return stringOf(v, &key)
		case fieldMapEntryValue:
			return stringOf(v, &value)
		}
		return nil
	})
	return key, value, err
}

// stringOf sets *dst to v, which must be UTF-8 as protobuf requires of a string field.
func stringOf(v []byte, dst *string) error {
	if !utf8.Valid(v) {
		return errBadRequest
	}
	*dst = ""
	if len(v) > 0 {
		*dst = unsafe.String(&v[0], len(v))
	}
	return nil
}

// eachBytesField calls fn with every length-delimited field of the message b, in order,
// and skips fields of any other wire type (none of the fields read here has one).
func eachBytesField(b []byte, fn func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errBadRequest
		}
		b = b[n:]
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return errBadRequest
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return errBadRequest
		}
		b = b[n:]
		if err := fn(num, v); err != nil {
			return err
		}
	}
	return nil
}
