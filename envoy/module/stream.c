// A stream's start and end, in C. Envoy calls these hooks for every stream; most streams are
// decided inside the request-headers hook, on the worker thread, and hold nothing of Go's
// after it, so creating and destroying them needs no entry into the Go runtime (a cgo
// callback: a P taken and handed back, on Envoy's worker). Only a stream whose decision went
// off the thread (an unknown kid's refetch) holds a Go filter, and its end goes to Go.

#include <stdlib.h>

#include "abi.h"
#include "stream.h"
#include "_cgo_export.h"

// Null when there is no memory for the slot, as the Go hook answered after a panic.
uintptr_t envoy_dynamic_module_on_http_filter_new(uintptr_t config, uintptr_t envoy) {
	jwtauthz_stream* s = calloc(1, sizeof *s);
	if (s == NULL) {
		return 0;
	}
	s->config = config;
	return (uintptr_t)s;
}

void envoy_dynamic_module_on_http_filter_destroy(uintptr_t filter) {
	jwtauthz_stream* s = (jwtauthz_stream*)filter;
	if (s == NULL) {
		return;
	}
	if (s->deferred != 0) {
		jwtauthz_destroy_deferred(s->deferred);
	}
	free(s);
}
