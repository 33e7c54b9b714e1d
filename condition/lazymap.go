package condition

import (
	"reflect"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// lazyMap is request.headers: a CEL map(string, string) whose single-key reads (m['k'],
// 'k' in m) go to Request.Header without building a map: a request's headers are read one or two at a time on the
// hot path, and building all of them as a Go map per check cost more than the rest of the
// evaluation. Whole-map operations (size, iteration, comparison) build it once.
type lazyMap struct {
	r     Request
	whole traits.Mapper
}

var _ traits.Mapper = (*lazyMap)(nil)

func (m *lazyMap) built() traits.Mapper {
	if m.whole == nil {
		m.whole = types.DefaultTypeAdapter.NativeToValue(m.r.Headers()).(traits.Mapper)
	}
	return m.whole
}

func (m *lazyMap) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return m.built().Find(key)
	}
	v, ok := m.r.Header(string(k))
	if !ok {
		return nil, false
	}
	return types.String(v), true
}

func (m *lazyMap) Get(key ref.Val) ref.Val {
	v, found := m.Find(key)
	if !found {
		return types.ValOrErr(v, "no such key: %v", key)
	}
	return v
}

func (m *lazyMap) Contains(key ref.Val) ref.Val {
	_, found := m.Find(key)
	return types.Bool(found)
}

func (m *lazyMap) ConvertToNative(t reflect.Type) (any, error) { return m.built().ConvertToNative(t) }
func (m *lazyMap) ConvertToType(t ref.Type) ref.Val            { return m.built().ConvertToType(t) }
func (m *lazyMap) Equal(other ref.Val) ref.Val                 { return m.built().Equal(other) }
func (m *lazyMap) Type() ref.Type                              { return types.MapType }
func (m *lazyMap) Value() any                                  { return m.built().Value() }
func (m *lazyMap) Iterator() traits.Iterator                   { return m.built().Iterator() }
func (m *lazyMap) Size() ref.Val                               { return m.built().Size() }
