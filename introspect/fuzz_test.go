package introspect

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzParseAnswer: any body either fails or yields an answer that agrees with the JSON:
// active only when the object's active member is the boolean true.
func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{
		`{"active":true,"exp":1800000000,"sub":"a"}`, `{"active":false}`, `{"active":"true"}`,
		`{"active":true,"exp":"soon"}`, `{"active":true,"exp":1e400}`, `null`, `[]`, `{"active":true}x`,
		`{"active":true,"active":false}`, `{"active":true,"exp":-1.5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := ParseAnswer(body)
		if err != nil {
			if a.Active {
				t.Fatal("error with an active answer")
			}
			return
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var m map[string]any
		if dec.Decode(&m) != nil {
			t.Fatalf("accepted %q, which encoding/json refuses", body)
		}
		if v, _ := m["active"].(bool); v != a.Active {
			t.Fatalf("%q: Active=%v, JSON says %v", body, a.Active, m["active"])
		}
	})
}
