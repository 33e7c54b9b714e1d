package main

/*
#include "abi.h"

// request_headers fetches the request's headers into a buffer of the calling thread's: an
// Envoy worker calls one hook at a time, and the Go side copies what it needs before the
// hook returns. Envoy's own memory, so cgo has no Go pointers to look for. NULL (and n 0)
// when there are none or Envoy says no; NULL with n set when they do not fit. The buffer is
// allocated on a thread's first request and kept: only its pointer is thread-local, as a
// library Envoy loads late has little static TLS to spare.
typedef struct { envoy_http_header* headers; size_t n; } request_headers_result;

enum { scratch_headers = 128 };

static request_headers_result request_headers(uintptr_t filter) {
	static __thread envoy_http_header* scratch;
	request_headers_result r = { NULL, envoy_dynamic_module_callback_http_get_headers_size(filter, header_type_request) };
	if (r.n == 0 || r.n > scratch_headers) {
		return r;
	}
	if (scratch == NULL && (scratch = calloc(scratch_headers, sizeof *scratch)) == NULL) {
		return r;
	}
	if (!envoy_dynamic_module_callback_http_get_headers(filter, header_type_request, scratch)) {
		r.n = 0;
		return r;
	}
	r.headers = scratch;
	return r;
}
*/
import "C"

import (
	"unsafe"

	"github.com/jwt-authz/jwt-authz/extauthz"
)

// requestHeaders copies the request's headers, pseudo-headers included, in Envoy's order;
// a repeated header stays separate entries. The names and values are copied into one Go
// buffer (Envoy's memory is gone after the hook) and sliced from it: two allocations per
// request instead of two per header.
//
// The header list is appended to dst[:0] (the filter's, reused by its later streams); the
// buffer is new for every request, as the decision may keep strings from it.
func requestHeaders(dst []extauthz.Header, filter uintptr) []extauthz.Header {
	r := C.request_headers(C.uintptr_t(filter))
	var raw []C.envoy_http_header
	switch {
	case r.headers != nil:
		raw = unsafe.Slice(r.headers, r.n)
	case r.n > 0: // more than the scratch buffer holds (or no memory for it): Go memory
		raw = make([]C.envoy_http_header, r.n)
		if !C.envoy_dynamic_module_callback_http_get_headers(C.uintptr_t(filter), C.header_type_request, &raw[0]) {
			return nil
		}
	default:
		return nil
	}
	size := 0
	for _, h := range raw {
		size += int(h.key_length) + int(h.value_length)
	}
	buf := make([]byte, 0, size)
	for _, h := range raw {
		buf = append(buf, unsafe.Slice((*byte)(unsafe.Pointer(h.key_ptr)), h.key_length)...)
		buf = append(buf, unsafe.Slice((*byte)(unsafe.Pointer(h.value_ptr)), h.value_length)...)
	}
	all := unsafe.String(unsafe.SliceData(buf), len(buf)) // buf is never written again
	hs := dst[:0]
	at := 0
	for _, h := range raw {
		k, v := int(h.key_length), int(h.value_length)
		hs = append(hs, extauthz.Header{Name: all[at : at+k], Value: all[at+k : at+k+v]})
		at += k + v
	}
	return hs
}
