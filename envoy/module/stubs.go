//go:build jwtauthz_stubs

package main

/*
#include "abi.h"
#include "stream.h"
extern const char** stub_headers;
extern char stub_removed[16][64];
extern size_t stub_removed_n;
extern uintptr_t stub_watched;
extern char stub_counted_labels[32][64];
extern uint64_t stub_counted[32];
extern size_t stub_counted_n;
extern uint64_t stub_commits;
static uint64_t stub_commits_now(void) { return __atomic_load_n(&stub_commits, __ATOMIC_SEQ_CST); }
uintptr_t envoy_dynamic_module_on_http_filter_new(uintptr_t config, uintptr_t envoy);
void envoy_dynamic_module_on_http_filter_destroy(uintptr_t filter);

// Envoy's view of the two C hooks: a stream is an opaque pointer.
static jwtauthz_stream* stub_filter_new(uintptr_t config) {
	return (jwtauthz_stream*)envoy_dynamic_module_on_http_filter_new(config, 1);
}
static void stub_filter_destroy(jwtauthz_stream* s) { envoy_dynamic_module_on_http_filter_destroy((uintptr_t)s); }
*/
import "C"

import "unsafe"

// setStubHeaders makes hs the request every stub get_headers call answers (stubs.c). The C
// copies live as long as the test binary.
func setStubHeaders(hs [][2]string) {
	arr := (*[1 << 20]*C.char)(C.calloc(C.size_t(2*len(hs)+1), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	for i, h := range hs {
		arr[2*i], arr[2*i+1] = C.CString(h[0]), C.CString(h[1])
	}
	C.stub_headers = (**C.char)(unsafe.Pointer(&arr[0]))
}

// takeRemoved answers the names the module removed from requests since the last call.
func takeRemoved() []string {
	var names []string
	for i := 0; i < int(C.stub_removed_n) && i < 16; i++ {
		names = append(names, C.GoString(&C.stub_removed[i][0]))
	}
	C.stub_removed_n = 0
	return names
}

// stream runs one stream through the hooks Envoy calls for a request the module decides on
// the worker thread: filter_new and destroy (C, stream.c), request_headers (Go). It answers
// the headers status.
func stream(config uintptr) int {
	s := C.stub_filter_new(C.uintptr_t(config))
	status := envoy_dynamic_module_on_http_filter_request_headers(1, s, true)
	C.stub_filter_destroy(s)
	return int(status)
}

// newConfig runs the filter-config hook on yaml and answers the module's pointer (0 when
// the config does not load).
func newConfig(yaml string) uintptr {
	name := "jwt_authz"
	return uintptr(envoy_dynamic_module_on_http_filter_config_new(1,
		C.envoy_buffer{ptr: (*C.char)(unsafe.Pointer(unsafe.StringData(name))), length: C.size_t(len(name))},
		C.envoy_buffer{ptr: (*C.char)(unsafe.Pointer(unsafe.StringData(yaml))), length: C.size_t(len(yaml))}))
}

// watchConfig makes config the filter config whose counts and commits the stubs record.
func watchConfig(config uintptr) {
	C.stub_watched = C.uintptr_t(config)
	C.stub_counted_n = 0
}

// takeCounted answers the sums the config-level increment was given for the watched config
// since the last call, by "decision/reason".
func takeCounted() map[string]uint64 {
	got := map[string]uint64{}
	for i := 0; i < int(C.stub_counted_n); i++ {
		got[C.GoString(&C.stub_counted_labels[i][0])] = uint64(C.stub_counted[i])
	}
	C.stub_counted_n = 0
	return got
}

// commits answers how many times a config scheduler was committed.
func commits() uint64 { return uint64(C.stub_commits_now()) }
