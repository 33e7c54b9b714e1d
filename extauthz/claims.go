package extauthz

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// maxJSONDepth bounds nesting in headers and payloads; real tokens nest two or three levels.
const maxJSONDepth = 32

// decodeObject decodes a JOSE header or JWT payload: a JSON object in valid UTF-8 without
// duplicate member names at any depth (RFC 7519 §4 lets a parser reject duplicates; RFC 7493
// I-JSON; rejecting removes any parser-differential doubt). jsontext enforces both by default
// and streams tokens without the per-token allocations of encoding/json's Decoder.Token.
// Numbers stay json.Number so they are forwarded exactly as the issuer wrote them.
func decodeObject(data []byte) (map[string]any, error) {
	od := objectDecoders.Get().(*objectDecoder)
	defer od.release()
	return od.decodeObject(data)
}

// decodeObjectBase64 is decodeObject of s, strict base64url, decoded into the pooled
// decoder's own buffer: what the object keeps is copied out of it.
func decodeObjectBase64(s string) (map[string]any, error) {
	od := objectDecoders.Get().(*objectDecoder)
	defer od.release()
	payload, err := decodeBase64(od.decoded[:0], s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotBase64, err)
	}
	od.decoded = payload // kept when it had to grow
	return od.decodeObject(payload)
}

// errNotBase64 marks decodeObjectBase64's failures that are the encoding's, not the JSON's.
var errNotBase64 = errors.New("not strict base64url")

func (od *objectDecoder) decodeObject(data []byte) (map[string]any, error) {
	dec, err := od.open(data)
	if err != nil {
		return nil, err
	}
	obj, err := decodeMembers(dec)
	if err != nil {
		return nil, err
	}
	return obj, od.close()
}

// objectDecoder is a reusable decoder: a fresh jsontext.Decoder per header and payload was a
// tenth of an uncached check's allocations. Decoded strings are copies, never its buffer.
type objectDecoder struct {
	in      bytes.Reader
	dec     jsontext.Decoder
	decoded []byte // decodeObjectBase64's buffer, reused
}

// open starts reading data, which must hold one JSON object, and reads its '{'.
func (od *objectDecoder) open(data []byte) (*jsontext.Decoder, error) {
	od.in.Reset(data)
	od.dec.Reset(&od.in)
	tok, err := od.dec.ReadToken()
	if err != nil {
		return nil, err
	}
	if tok.Kind() != '{' {
		return nil, errors.New("not a JSON object")
	}
	return &od.dec, nil
}

// close checks that nothing follows the object's '}', which the caller has read.
func (od *objectDecoder) close() error {
	if _, err := od.dec.ReadToken(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the object")
	}
	return nil
}

// release hands od back to the pool without a reference to the caller's bytes. od.decoded
// still holds the last payload decoded into it, until the next one overwrites it.
func (od *objectDecoder) release() {
	od.in.Reset(nil)
	if cap(od.decoded) > 16<<10 { // one large token must not pin its buffer
		od.decoded = nil
	}
	objectDecoders.Put(od)
}

var objectDecoders = sync.Pool{New: func() any { return new(objectDecoder) }}

func decodeMembers(dec *jsontext.Decoder) (map[string]any, error) {
	obj := make(map[string]any)
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		name := tok.String() // duplicates were refused by the decoder
		v, err := decodeValue(dec)
		if err != nil {
			return nil, err
		}
		obj[name] = v
	}
	if _, err := dec.ReadToken(); err != nil { // closing '}'
		return nil, err
	}
	return obj, nil
}

func decodeValue(dec *jsontext.Decoder) (any, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case '"':
		return tok.String(), nil
	case '0':
		return json.Number(tok.String()), nil
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case 'n':
		return nil, nil
	}
	if dec.StackDepth() > maxJSONDepth {
		return nil, errors.New("nested too deeply")
	}
	if tok.Kind() == '{' {
		return decodeMembers(dec)
	}
	arr := []any{}
	for dec.PeekKind() != ']' {
		v, err := decodeValue(dec)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
	}
	if _, err := dec.ReadToken(); err != nil { // closing ']'
		return nil, err
	}
	return arr, nil
}

// scalarText renders a scalar claim as text: strings as they are, numbers exactly as the
// issuer wrote them, booleans as true/false. ok is false for arrays, objects and null.
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		if x {
			return "true", true
		}
		return "false", true
	}
	return "", false
}

// headerText renders a claim for an upstream header: scalars as text, arrays comma-joined
// (non-scalar elements as JSON), objects as JSON.
func headerText(v any) (string, bool) {
	if s, ok := scalarText(v); ok {
		return s, true
	}
	switch x := v.(type) {
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := scalarText(e)
			if !ok {
				b, err := json.Marshal(e)
				if err != nil {
					return "", false
				}
				s = string(b)
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, ","), true
	case map[string]any:
		b, err := json.Marshal(x)
		if err != nil {
			return "", false
		}
		return string(b), true
	}
	return "", false
}

// validHeaderValue reports whether s can go into an HTTP header without Envoy's
// validate_mutations refusing it (RFC 9110 §5.5: no CR, LF, NUL or other controls but tab).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
