package extauthz

import (
	"testing"
)

// headerFromObject is decodeHeader's reference: the whole header decoded into a map by
// decodeObject, then read as parseToken read it before decodeHeader existed.
func headerFromObject(data []byte) (joseHeader, error) {
	m, err := decodeObject(data)
	if err != nil {
		return joseHeader{}, err
	}
	var h joseHeader
	for _, name := range []string{"crit", "b64", "zip"} {
		if _, ok := m[name]; ok {
			h.refused = name
			break
		}
	}
	member := func(name string) headerMember {
		v, present := m[name]
		s, isString := v.(string)
		return headerMember{text: s, present: present, isString: isString}
	}
	h.alg, h.kid, h.typ = member("alg"), member("kid"), member("typ")
	return h, nil
}

var headerSeeds = []string{
	`{"alg":"RS256","kid":"k1","typ":"JWT"}`,
	`{"alg":"ES256","typ":"at+jwt","x5t#S256":"abc","jku":"https://x"}`,
	`{"\u0061lg":"HS256","k\u0069d":"\u00e9t\u00e9"}`,
	`{"alg":"RS256","alg":"none"}`,
	`{"ALG":"none","Kid":"x","KID":"y","TYP":"JWT","alg":"ES256"}`,
	`{"alg":5,"kid":null,"typ":["JWT"]}`,
	`{"alg":"EdDSA","crit":["exp"],"b64":false,"zip":"DEF"}`,
	`{"zip":"DEF","b64":true}`,
	`{"alg":"RS256","jwk":{"kty":"RSA","n":"AQAB","e":"AQAB","nested":[[[[1]]]]}}`,
	`{"alg":"RS256"} {}`,
	`["alg","RS256"]`,
	`{"alg":"RS256","kid":"` + "\xff" + `"}`,
	`{"alg":"RS256","x":` + deepArray(40) + `}`,
	`{"alg":"a very long algorithm name that does not fit in the small buffer at all, at all"}`,
	`{}`,
	``,
}

func deepArray(n int) string {
	s := ""
	for range n {
		s += "["
	}
	for range n {
		s += "]"
	}
	return s
}

// TestDecodeHeader: decodeHeader answers as the map-based reference on headers that use
// escapes, duplicates, wrong types, refused members, deep nesting, invalid UTF-8 and
// trailing data.
func TestDecodeHeader(t *testing.T) {
	for _, s := range headerSeeds {
		compareHeaderDecoders(t, []byte(s))
	}
	h, err := decodeHeader([]byte(`{"\u0061lg":"HS256","kid":"k","crit":["x"],"zip":"DEF"}`))
	if err != nil || h.alg.text != "HS256" || h.kid.text != "k" || h.refused != "crit" {
		t.Errorf("decodeHeader = %+v, %v; want alg HS256, kid k, crit refused", h, err)
	}
}

func FuzzDecodeHeader(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(compareHeaderDecoders)
}

func compareHeaderDecoders(t *testing.T, data []byte) {
	got, err := decodeHeader(data)
	want, wantErr := headerFromObject(data)
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("%q: decodeHeader error %v, reference error %v", data, err, wantErr)
	}
	if err == nil && got != want {
		t.Fatalf("%q: decodeHeader = %+v, reference %+v", data, got, want)
	}
}
