package introspect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Answer is what the cache needs from an introspection answer; the caller checks the
// claims (iss, aud, exp, ...) itself, like a JWT's.
type Answer struct {
	// Active is the answer's active member, which must be a JSON boolean (RFC 7662 §2.2):
	// a missing one, "true" or 1 make the answer malformed.
	Active bool
	Exp    time.Time
	HasExp bool
}

// ParseAnswer reads an RFC 7662 §2.2 answer: one JSON object. A malformed body is an error;
// active must be a boolean; exp, when present on an active answer, a number.
func ParseAnswer(body []byte) (Answer, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return Answer{}, fmt.Errorf("answer is not a JSON object: %v", err)
	}
	if m == nil {
		return Answer{}, errors.New("answer is not a JSON object")
	}
	var extra any
	if err := dec.Decode(&extra); err != io.EOF {
		return Answer{}, errors.New("answer has data after its JSON object")
	}
	v, ok := m["active"]
	if !ok {
		return Answer{}, errors.New("answer has no active member")
	}
	active, ok := v.(bool)
	if !ok {
		return Answer{}, errors.New("answer's active member is not a boolean")
	}
	a := Answer{Active: active}
	if !active {
		return a, nil
	}
	if v, ok := m["exp"]; ok {
		n, isNum := v.(json.Number)
		f, err := n.Float64()
		if !isNum || err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e12 {
			return Answer{}, errors.New("answer's exp is not a number in range")
		}
		sec, frac := math.Modf(f)
		a.Exp, a.HasExp = time.Unix(int64(sec), int64(frac*1e9)), true
	}
	return a, nil
}
