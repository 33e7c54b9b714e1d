// The event hooks that need no Go. Envoy 1.40 resolves every envoy_dynamic_module_on_http_*
// hook by name when it loads an HTTP filter and refuses the filter if one is missing, so the
// ones the filter does not use are exported too; defined here, in C, they cost Envoy a plain
// call instead of an entry into the Go runtime (a cgo callback: the thread's M and a P taken
// and handed back), which Envoy paid several times per request for hooks that did nothing
// (response headers and body, stream end, local reply). The library exports them like the
// Go hooks (nm -D); their signatures are the 1.40 binary's (docs/in-process.md, "The ABI").

#include "abi.h"

int envoy_dynamic_module_on_http_filter_request_body(uintptr_t envoy, uintptr_t filter, bool end_of_stream) { return 0; }
int envoy_dynamic_module_on_http_filter_request_trailers(uintptr_t envoy, uintptr_t filter) { return 0; }
int envoy_dynamic_module_on_http_filter_response_headers(uintptr_t envoy, uintptr_t filter, bool end_of_stream) { return 0; }
int envoy_dynamic_module_on_http_filter_response_body(uintptr_t envoy, uintptr_t filter, bool end_of_stream) { return 0; }
int envoy_dynamic_module_on_http_filter_response_trailers(uintptr_t envoy, uintptr_t filter) { return 0; }
void envoy_dynamic_module_on_http_filter_stream_complete(uintptr_t envoy, uintptr_t filter) {}

// Continue: the local reply goes out as it is.
int envoy_dynamic_module_on_http_filter_local_reply(uintptr_t envoy, uintptr_t filter, uint32_t response_code,
    envoy_buffer details, bool reset_imminent) { return 0; }

// No per-route config: rules in the config file select by route.
uintptr_t envoy_dynamic_module_on_http_filter_per_route_config_new(envoy_buffer name, envoy_buffer config) { return 0; }
void envoy_dynamic_module_on_http_filter_per_route_config_destroy(uintptr_t config) {}

// The module makes no HTTP callouts or streams of its own, and no HTTP callouts of a filter config.
void envoy_dynamic_module_on_http_filter_http_callout_done(uintptr_t envoy, uintptr_t filter, uint64_t id, int result,
    envoy_http_header* headers, size_t headers_size, envoy_buffer* body, size_t body_size) {}
void envoy_dynamic_module_on_http_filter_http_stream_headers(uintptr_t envoy, uintptr_t filter, uint64_t id,
    envoy_http_header* headers, size_t headers_size, bool end_stream) {}
void envoy_dynamic_module_on_http_filter_http_stream_data(uintptr_t envoy, uintptr_t filter, uint64_t id,
    envoy_buffer* data, size_t data_size, bool end_stream) {}
void envoy_dynamic_module_on_http_filter_http_stream_trailers(uintptr_t envoy, uintptr_t filter, uint64_t id,
    envoy_http_header* trailers, size_t trailers_size) {}
void envoy_dynamic_module_on_http_filter_http_stream_complete(uintptr_t envoy, uintptr_t filter, uint64_t id) {}
void envoy_dynamic_module_on_http_filter_http_stream_reset(uintptr_t envoy, uintptr_t filter, uint64_t id, int reason) {}
void envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(uintptr_t envoy, uintptr_t filter) {}
void envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(uintptr_t envoy, uintptr_t filter) {}
void envoy_dynamic_module_on_http_filter_config_http_callout_done(uintptr_t envoy, uintptr_t config, uint64_t id, int result,
    envoy_http_header* headers, size_t headers_size, envoy_buffer* body, size_t body_size) {}
void envoy_dynamic_module_on_http_filter_config_http_stream_headers(uintptr_t envoy, uintptr_t config, uint64_t id,
    envoy_http_header* headers, size_t headers_size, bool end_stream) {}
void envoy_dynamic_module_on_http_filter_config_http_stream_data(uintptr_t envoy, uintptr_t config, uint64_t id,
    envoy_buffer* data, size_t data_size, bool end_stream) {}
void envoy_dynamic_module_on_http_filter_config_http_stream_trailers(uintptr_t envoy, uintptr_t config, uint64_t id,
    envoy_http_header* trailers, size_t trailers_size) {}
void envoy_dynamic_module_on_http_filter_config_http_stream_complete(uintptr_t envoy, uintptr_t config, uint64_t id) {}
void envoy_dynamic_module_on_http_filter_config_http_stream_reset(uintptr_t envoy, uintptr_t config, uint64_t id, int reason) {}
