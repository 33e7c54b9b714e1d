package extauthz

import (
	"context"
	"slices"
	"testing"
	"unsafe"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/google/go-cmp/cmp"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
)

// newRequest builds the request view from a decoded message, as the server did before it
// read requests from the wire. It is the reference FuzzParseRequest holds parseRequest to.
func newRequest(attrs *authv3.AttributeContext) *request {
	r := &request{
		sourcePrincipal:      attrs.GetSource().GetPrincipal(),
		destinationPrincipal: attrs.GetDestination().GetPrincipal(),
	}
	for k, v := range attrs.GetContextExtensions() {
		r.contextEx = append(r.contextEx, field{k, v})
	}
	if h := attrs.GetRequest().GetHttp(); h != nil {
		r.http = true
		r.wireMethod, r.wireHost, r.wirePath, r.wireQuery = h.GetMethod(), h.GetHost(), h.GetPath(), h.GetQuery()
		for k, v := range h.GetHeaders() {
			r.mapHeaders = append(r.mapHeaders, field{k, v})
		}
		if hm := h.GetHeaderMap(); hm != nil {
			r.raw = true
			for _, hv := range hm.GetHeaders() {
				v := hv.GetValue()
				if len(hv.GetRawValue()) > 0 {
					v = string(hv.GetRawValue())
				}
				r.rawHeaders = append(r.rawHeaders, field{hv.GetKey(), v})
			}
		}
	}
	r.finish()
	return r
}

// requestView is what the decision can read from a request, in a comparable form: a map
// encoding as the map protobuf would decode (the last of a repeated key wins).
type requestView struct {
	HTTP, Raw                                        bool
	Method, Host, Path, MatchPath, Query             string
	MapHeaders                                       map[string]string
	RawHeaders                                       []field
	ContextExtensions                                map[string]string
	SourcePrincipal, DestinationPrincipal, RequestID string
}

func viewOf(r *request) requestView {
	v := requestView{
		HTTP: r.http, Raw: r.raw, Method: r.method, Host: r.host, Path: r.path, MatchPath: r.matchPath,
		Query: r.query, ContextExtensions: map[string]string{}, SourcePrincipal: r.sourcePrincipal,
		DestinationPrincipal: r.destinationPrincipal, RequestID: r.requestID(),
	}
	for _, f := range r.contextEx {
		v.ContextExtensions[f.name], _ = r.contextExtension(f.name)
	}
	if r.raw {
		v.RawHeaders = slices.Clone(r.headers)
	} else {
		v.MapHeaders = map[string]string{}
		for _, f := range r.headers {
			v.MapHeaders[f.name], _ = r.header(f.name)
		}
	}
	return v
}

// FuzzParseRequest: whatever the bytes, parseRequest never panics, and where protobuf can
// decode them it reads exactly what the decoded message says.
func FuzzParseRequest(f *testing.F) {
	seeds := []*authv3.CheckRequest{
		envoyRequest{headers: bearer("a.b.c")}.proto(),
		envoyRequest{rawHeader: true, headers: hdrs("authorization", "Bearer a.b.c", "Authorization", "Basic eA==", "cookie", "x=1")}.proto(),
		envoyRequest{method: "POST", host: "API.example.com.:8443", path: "/a/../b?q=1#f", context: map[string]string{"route": "api"}, principal: "spiffe://cluster.local/ns/a/sa/b"}.proto(),
		{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Headers: map[string]string{":path": "/from-header", ":authority": "h.example:1", ":method": "PUT"}}}}},
		{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "x", Value: "v", RawValue: []byte("raw\xff")}, {Key: "y", Value: "only"}}}}}}},
		{Attributes: &authv3.AttributeContext{Source: &authv3.AttributeContext_Peer{Principal: "tcp-client"}}},
		{},
	}
	for i, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		// Two messages back to back are one merged message: repeated fields append, the
		// last scalar and map key win, the header_map of either makes it raw.
		next, _ := proto.Marshal(seeds[(i+1)%len(seeds)])
		f.Add(append(slices.Clone(b), next...))
	}
	// A header's key sent as a varint: protobuf keeps it as an unknown field.
	f.Add(protowire.AppendVarint(protowire.AppendTag(nil, fieldCheckAttributes, protowire.VarintType), 7))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRequest(b)
		var m authv3.CheckRequest
		if proto.Unmarshal(b, &m) != nil {
			return // parseRequest may accept it: it does not validate fields it never reads
		}
		if err != nil {
			t.Fatalf("parseRequest: %v, but proto.Unmarshal decodes it", err)
		}
		if diff := cmp.Diff(viewOf(newRequest(m.GetAttributes())), viewOf(r), cmp.AllowUnexported(field{})); diff != "" {
			t.Fatalf("parseRequest reads differently from proto.Unmarshal (-proto +wire):\n%s", diff)
		}
	})
}

// TestParseRequestRejectsWhatProtobufRejects: a string the decision reads that is not
// UTF-8, or a truncated message, is a 400 malformed_request denial, never a guess.
func TestParseRequestRejectsWhatProtobufRejects(t *testing.T) {
	good, _ := proto.Marshal(envoyRequest{headers: bearer("a.b.c")}.proto())
	badUTF8 := func() []byte {
		hv := appendString(appendString(nil, fieldMapEntryKey, "authorization"), fieldMapEntryValue, "Bearer \xff")
		http := appendMessageHeader(nil, fieldHTTPHeaders, len(hv))
		http = append(http, hv...)
		req := appendMessageHeader(nil, fieldRequestHTTP, len(http))
		req = append(req, http...)
		attrs := appendMessageHeader(nil, fieldAttrRequest, len(req))
		attrs = append(attrs, req...)
		b := appendMessageHeader(nil, fieldCheckAttributes, len(attrs))
		return append(b, attrs...)
	}()
	for name, b := range map[string][]byte{
		"not UTF-8":  badUTF8,
		"truncated":  good[:len(good)-3],
		"bad tag":    {0xff},
		"bad length": {0x0a, 0x7f},
	} {
		t.Run(name, func(t *testing.T) {
			var m authv3.CheckRequest
			if proto.Unmarshal(b, &m) == nil {
				t.Fatal("proto.Unmarshal accepts it: not a rejection case")
			}
			if _, err := parseRequest(b); err == nil {
				t.Fatal("parseRequest accepted it")
			}
			p := newPolicy(t, "default_action: allow\n", nil)
			out, d := p.AppendCheck(nil, context.Background(), b, testNow)
			var resp authv3.CheckResponse
			if err := proto.Unmarshal(out, &resp); err != nil {
				t.Fatal(err)
			}
			if d.Allowed || d.Reason != ReasonBadRequest || resp.GetDeniedResponse().GetStatus().GetCode() != 400 || resp.GetStatus().GetCode() != 3 {
				t.Fatalf("decision %+v, response %v: want a 400 malformed_request denial", d, &resp)
			}
		})
	}
}

// TestWireFieldNumbers: the field numbers the wire code reads and writes are the ones in
// the protobuf descriptors.
func TestWireFieldNumbers(t *testing.T) {
	fields := func(m proto.Message) protoreflect.FieldDescriptors { return m.ProtoReflect().Descriptor().Fields() }
	tests := []struct {
		msg  proto.Message
		name protoreflect.Name
		num  protowire.Number
	}{
		{&authv3.CheckRequest{}, "attributes", fieldCheckAttributes},
		{&authv3.AttributeContext{}, "source", fieldAttrSource},
		{&authv3.AttributeContext{}, "destination", fieldAttrDestination},
		{&authv3.AttributeContext{}, "request", fieldAttrRequest},
		{&authv3.AttributeContext{}, "context_extensions", fieldAttrContextExt},
		{&authv3.AttributeContext_Peer{}, "principal", fieldPeerPrincipal},
		{&authv3.AttributeContext_Peer{}, "certificate", fieldPeerCertificate},
		{&authv3.AttributeContext_Request{}, "http", fieldRequestHTTP},
		{&authv3.AttributeContext_HttpRequest{}, "method", fieldHTTPMethod},
		{&authv3.AttributeContext_HttpRequest{}, "headers", fieldHTTPHeaders},
		{&authv3.AttributeContext_HttpRequest{}, "path", fieldHTTPPath},
		{&authv3.AttributeContext_HttpRequest{}, "host", fieldHTTPHost},
		{&authv3.AttributeContext_HttpRequest{}, "scheme", fieldHTTPScheme},
		{&authv3.AttributeContext_HttpRequest{}, "query", fieldHTTPQuery},
		{&authv3.AttributeContext_HttpRequest{}, "header_map", fieldHTTPHeaderMap},
		{&corev3.HeaderMap{}, "headers", fieldHeaderMapHeaders},
		{&corev3.HeaderValue{}, "key", fieldHeaderKey},
		{&corev3.HeaderValue{}, "value", fieldHeaderValue},
		{&corev3.HeaderValue{}, "raw_value", fieldHeaderRawValue},
		{&authv3.CheckResponse{}, "status", fieldRespStatus},
		{&authv3.CheckResponse{}, "ok_response", fieldRespOK},
		{&authv3.CheckResponse{}, "dynamic_metadata", fieldRespMetadata},
		{&authv3.OkHttpResponse{}, "headers", fieldOKHeaders},
		{&authv3.OkHttpResponse{}, "headers_to_remove", fieldOKHeadersToRemove},
		{&authv3.OkHttpResponse{}, "query_parameters_to_remove", fieldOKQueryToRemove},
		{&corev3.HeaderValueOption{}, "header", fieldOptionHeader},
		{&corev3.HeaderValueOption{}, "append", fieldOptionAppend},
		{&corev3.HeaderValueOption{}, "append_action", fieldOptionAppendAction},
		{&structpb.Struct{}, "fields", fieldStructFields},
		{&structpb.Value{}, "string_value", fieldValueString},
		{&rpcstatus.Status{}, "code", 1},
	}
	for _, tc := range tests {
		fd := fields(tc.msg).ByName(tc.name)
		if fd == nil || fd.Number() != tc.num {
			t.Errorf("%s.%s: the code uses %d, the descriptor says %v", tc.msg.ProtoReflect().Descriptor().FullName(), tc.name, tc.num, fd)
		}
	}
	for _, m := range []proto.Message{&authv3.AttributeContext{}, &authv3.AttributeContext_HttpRequest{}} {
		for _, name := range []protoreflect.Name{"context_extensions", "headers"} {
			if fd := fields(m).ByName(name); fd != nil {
				if k, v := fd.MapKey(), fd.MapValue(); k.Number() != fieldMapEntryKey || v.Number() != fieldMapEntryValue {
					t.Errorf("%s map entry numbers %d, %d", name, k.Number(), v.Number())
				}
			}
		}
	}
}

// TestUpstreamHeaderEncoding: the hand-encoded header option is the message Envoy expects.
func TestUpstreamHeaderEncoding(t *testing.T) {
	var ok authv3.OkHttpResponse
	if err := proto.Unmarshal(appendUpstreamHeader(nil, "x-jwt-sub", "alice"), &ok); err != nil {
		t.Fatal(err)
	}
	want := &authv3.OkHttpResponse{Headers: []*corev3.HeaderValueOption{upstream("x-jwt-sub", "alice")}}
	if !proto.Equal(&ok, want) {
		t.Fatalf("got %v, want %v", &ok, want)
	}
}

// TestCachedIdentityOwnsItsMemory: the request's strings alias the buffer it arrived in,
// which gRPC does not keep; a cached identity must hold none of them.
func TestCachedIdentityOwnsItsMemory(t *testing.T) {
	f := newCacheFixture(t, "")
	tok := sig.mint(t, "ES256", "ec256", func(_, c map[string]any) { c["scope"] = "read admin" })
	in, err := proto.Marshal(envoyRequest{path: "/admin", headers: bearer(tok)}.proto())
	if err != nil {
		t.Fatal(err)
	}
	if _, d := f.cached.AppendCheck(nil, context.Background(), in, testNow); !d.Allowed {
		t.Fatalf("decision %+v", d)
	}
	lo, hi := uintptr(unsafe.Pointer(unsafe.SliceData(in))), uintptr(unsafe.Pointer(unsafe.SliceData(in)))+uintptr(len(in))
	inside := func(p unsafe.Pointer) bool { return uintptr(p) >= lo && uintptr(p) < hi }
	n := 0
	for i := range f.cached.cache.shards {
		for _, id := range f.cached.cache.shards[i].entries {
			n++
			strs := []string{id.kid(), id.iss(), id.sub}
			for _, c := range id.claims {
				if s, ok := c.(string); ok {
					strs = append(strs, s)
				}
			}
			for _, s := range strs {
				if s != "" && inside(unsafe.Pointer(unsafe.StringData(s))) {
					t.Errorf("cached string %q points into the request buffer", s)
				}
			}
			if len(id.headerWire) > 0 && inside(unsafe.Pointer(unsafe.SliceData(id.headerWire))) {
				t.Error("cached headers point into the request buffer")
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d cached identities, want 1", n)
	}
}
