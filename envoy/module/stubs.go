//go:build jwtauthz_stubs

package main

/*
#include "abi.h"
extern const char** stub_headers;
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

// stream runs one stream through the hooks Envoy calls for a request the module decides on
// the worker thread: filter_new, request_headers, destroy. It answers the headers status.
func stream(config uintptr) int {
	f := envoy_dynamic_module_on_http_filter_new(C.uintptr_t(config), 1)
	status := envoy_dynamic_module_on_http_filter_request_headers(1, f, true)
	envoy_dynamic_module_on_http_filter_destroy(f)
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
