// The per-stream state Envoy keeps for the module: what envoy_dynamic_module_on_http_filter_new
// answers. It lives in C memory (stream.c), so that a stream whose decision is made on the
// worker thread enters Go once, in the request-headers hook (filter.go).
#pragma once
#include <stdint.h>

typedef struct {
	uintptr_t config;   // the filter config's cgo.Handle (module.go)
	uintptr_t deferred; // the Go filter's cgo.Handle once its decision went off the worker thread; else 0
} jwtauthz_stream;
