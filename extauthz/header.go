package extauthz

import (
	"github.com/go-json-experiment/json/jsontext"
)

// joseHeader is what parseToken reads of a JOSE header: the three members it uses, and the
// first of the members it refuses (crit, then b64, then zip).
type joseHeader struct {
	alg, kid, typ headerMember
	refused       string
}

// headerMember is one header member: whether it was there, and its text if a string.
type headerMember struct {
	text     string
	present  bool
	isString bool
}

// decodeHeader decodes a JOSE header under the same rules as decodeObject (one object, I-JSON:
// no duplicate names, valid UTF-8, nesting bounded, nothing after it) without building a
// map: every member is read, and only alg, kid and typ are kept. Header names are compared
// after unquoting, so an escaped "\u0061lg" is alg, as JSON says.
func decodeHeader(data []byte) (joseHeader, error) {
	var h joseHeader
	od := objectDecoders.Get().(*objectDecoder)
	defer od.release()
	dec, err := od.open(data)
	if err != nil {
		return h, err
	}
	var crit, b64, zip bool
	for dec.PeekKind() != '}' {
		quoted, err := dec.ReadValue() // the name; duplicates were refused by the decoder
		if err != nil {
			return h, err
		}
		var buf [16]byte
		name, err := jsontext.AppendUnquote(buf[:0], quoted)
		if err != nil {
			return h, err
		}
		var m *headerMember
		switch string(name) {
		case "alg":
			m = &h.alg
		case "kid":
			m = &h.kid
		case "typ":
			m = &h.typ
		case "crit":
			crit = true
		case "b64":
			b64 = true
		case "zip":
			zip = true
		}
		if m == nil || dec.PeekKind() != '"' {
			if _, err := decodeValue(dec); err != nil { // what decodeObject would refuse
				return h, err
			}
			if m != nil {
				m.present = true
			}
			continue
		}
		quoted, err = dec.ReadValue()
		if err != nil {
			return h, err
		}
		var vbuf [64]byte
		value, err := jsontext.AppendUnquote(vbuf[:0], quoted)
		if err != nil {
			return h, err
		}
		*m = headerMember{text: headerString(value), present: true, isString: true}
	}
	if _, err := dec.ReadToken(); err != nil { // closing '}'
		return h, err
	}
	if err := od.close(); err != nil {
		return h, err
	}
	switch {
	case crit:
		h.refused = "crit"
	case b64:
		h.refused = "b64"
	case zip:
		h.refused = "zip"
	}
	return h, nil
}

// headerString is a header value as a string, without a new one for the usual alg and typ
// values.
func headerString(b []byte) string {
	if s, ok := commonHeaderValues[string(b)]; ok { // the lookup does not allocate
		return s
	}
	return string(b)
}

var commonHeaderValues = func() map[string]string {
	m := make(map[string]string)
	for _, s := range []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
		"ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512", "JWT", "at+jwt", "application/at+jwt"} {
		m[s] = s
	}
	return m
}()
