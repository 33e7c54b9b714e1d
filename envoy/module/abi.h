// The parts of Envoy's dynamic-module ABI (source/extensions/dynamic_modules/abi/abi.h) that
// the module uses, declared by hand and checked against Envoy 1.40.0: see abi.go.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct { const char* ptr; size_t length; } envoy_buffer;  // owned by Envoy
// Owned by the module. The pointer is an integer to cgo, so that handing Envoy a Go string
// costs no pointer check and an array of buffers may be Go memory; the Go side keeps each
// string alive across the call (runtime.KeepAlive), and Go's heap does not move.
typedef struct { uintptr_t ptr; size_t length; } module_buffer;
typedef struct { const char* key_ptr; size_t key_length; const char* value_ptr; size_t value_length; } envoy_http_header;
typedef struct { const char* key_ptr; size_t key_length; const char* value_ptr; size_t value_length; } module_http_header;

// envoy_dynamic_module_type_http_header_type
enum { header_type_request = 0 };

size_t envoy_dynamic_module_callback_http_get_headers_size(uintptr_t filter, int header_type);
bool envoy_dynamic_module_callback_http_get_headers(uintptr_t filter, int header_type, envoy_http_header* result);
// A null value removes the header; otherwise every value is replaced by value.
bool envoy_dynamic_module_callback_http_set_header(uintptr_t filter, int header_type, module_buffer key, module_buffer value);
// Adds a value; false when the value buffer is null.
bool envoy_dynamic_module_callback_http_add_header(uintptr_t filter, int header_type, module_buffer key, module_buffer value);
void envoy_dynamic_module_callback_http_send_response(uintptr_t filter, uint32_t status,
    module_http_header* headers, size_t headers_size, module_buffer body, module_buffer details);
void envoy_dynamic_module_callback_http_set_dynamic_metadata_string(uintptr_t filter,
    module_buffer ns, module_buffer key, module_buffer value);
// Sets every entry's key to its string value under namespace ns, in one merge into the
// stream's metadata. An entry's pointers are integers, as module_buffer's are.
typedef struct { uintptr_t key_ptr; size_t key_length; uintptr_t value_ptr; size_t value_length; } module_string_entry;
void envoy_dynamic_module_callback_http_set_dynamic_metadata_string_batch(uintptr_t filter,
    module_buffer ns, module_string_entry* entries, size_t entries_size);
uintptr_t envoy_dynamic_module_callback_http_filter_scheduler_new(uintptr_t filter);
void envoy_dynamic_module_callback_http_filter_scheduler_commit(uintptr_t scheduler, uint64_t event_id);
void envoy_dynamic_module_callback_http_filter_scheduler_delete(uintptr_t scheduler);
void envoy_dynamic_module_callback_http_filter_continue_decoding(uintptr_t filter);
// A string attribute of the stream (envoy_dynamic_module_type_attribute_id), pointing into
// Envoy's memory until the hook returns; false when the stream has none.
bool envoy_dynamic_module_callback_http_filter_get_attribute_string(uintptr_t filter, int attribute_id, envoy_buffer* result);
// connection.sha256_peer_certificate_digest: the hex SHA-256 of the TLS client certificate.
enum { attribute_connection_sha256_peer_certificate_digest = 38 };
// The server's --concurrency: its number of worker threads. Main thread only.
uint32_t envoy_dynamic_module_callback_get_concurrency(void);
// Returns envoy_dynamic_module_type_metrics_result: 0 is Success. Counters are defined on
// the main thread, in the config hook; their labels are Envoy stat tags.
int envoy_dynamic_module_callback_http_filter_config_define_counter(uintptr_t config, module_buffer name,
    module_buffer* label_names, size_t label_names_size, size_t* id);
// The filter config's own: main thread only, from the config-scheduled and config-destroy hooks.
int envoy_dynamic_module_callback_http_filter_config_increment_counter(uintptr_t config, size_t id,
    module_buffer* label_values, size_t label_values_size, uint64_t value);
// A config scheduler holds a weak reference to Envoy's filter config: a commit (any thread)
// runs the config-scheduled hook on the main thread, unless the config is gone by then.
uintptr_t envoy_dynamic_module_callback_http_filter_config_scheduler_new(uintptr_t config);
void envoy_dynamic_module_callback_http_filter_config_scheduler_commit(uintptr_t scheduler, uint64_t event_id);
void envoy_dynamic_module_callback_http_filter_config_scheduler_delete(uintptr_t scheduler);
int envoy_dynamic_module_callback_http_filter_increment_counter(uintptr_t filter, size_t id,
    module_buffer* label_values, size_t label_values_size, uint64_t value);
