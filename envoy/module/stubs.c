//go:build jwtauthz_stubs

// Stand-ins for Envoy's callbacks, for BenchmarkRequestHeaders only (go test -tags
// jwtauthz_stubs): a request with fixed headers, and setters that do nothing. Never in a
// library Envoy loads: Envoy provides these symbols.

#include <stdio.h>
#include <string.h>

#include "abi.h"

// stub_headers is set by the benchmark: name, value, name, value, ...; NULL-terminated.
const char** stub_headers;

size_t envoy_dynamic_module_callback_http_get_headers_size(uintptr_t filter, int header_type) {
	size_t n = 0;
	while (stub_headers && stub_headers[2 * n]) n++;
	return n;
}

bool envoy_dynamic_module_callback_http_get_headers(uintptr_t filter, int header_type, envoy_http_header* result) {
	for (size_t i = 0; stub_headers[2 * i]; i++) {
		result[i].key_ptr = stub_headers[2 * i];
		result[i].key_length = strlen(stub_headers[2 * i]);
		result[i].value_ptr = stub_headers[2 * i + 1];
		result[i].value_length = strlen(stub_headers[2 * i + 1]);
	}
	return true;
}

// stub_removed records the names set_header is asked to remove (a null value), for
// TestRemovals; stub_removed_n counts them, the first 16 kept.
char stub_removed[16][64];
size_t stub_removed_n;

bool envoy_dynamic_module_callback_http_set_header(uintptr_t filter, int header_type, module_buffer key, module_buffer value) {
	if (value.ptr == 0) {
		if (stub_removed_n < 16) {
			size_t n = key.length < 63 ? key.length : 63;
			memcpy(stub_removed[stub_removed_n], (const char*)key.ptr, n);
			stub_removed[stub_removed_n][n] = 0;
		}
		stub_removed_n++;
	}
	return true;
}
bool envoy_dynamic_module_callback_http_add_header(uintptr_t filter, int header_type, module_buffer key, module_buffer value) {
	return true;
}
void envoy_dynamic_module_callback_http_send_response(uintptr_t filter, uint32_t status,
    module_http_header* headers, size_t headers_size, module_buffer body, module_buffer details) {}
void envoy_dynamic_module_callback_http_set_dynamic_metadata_string(uintptr_t filter,
    module_buffer ns, module_buffer key, module_buffer value) {}
void envoy_dynamic_module_callback_http_set_dynamic_metadata_string_batch(uintptr_t filter,
    module_buffer ns, module_string_entry* entries, size_t entries_size) {}
uintptr_t envoy_dynamic_module_callback_http_filter_scheduler_new(uintptr_t filter) { return 1; }
void envoy_dynamic_module_callback_http_filter_scheduler_commit(uintptr_t scheduler, uint64_t event_id) {}
void envoy_dynamic_module_callback_http_filter_scheduler_delete(uintptr_t scheduler) {}
void envoy_dynamic_module_callback_http_filter_continue_decoding(uintptr_t filter) {}
uint32_t envoy_dynamic_module_callback_get_concurrency(void) { return 1; }
bool envoy_dynamic_module_callback_http_filter_get_attribute_string(uintptr_t filter, int attribute_id, envoy_buffer* result) {
	return false;
}
int envoy_dynamic_module_callback_http_filter_config_define_counter(uintptr_t config, module_buffer name,
    module_buffer* label_names, size_t label_names_size, size_t* id) { *id = 0; return 0; }
int envoy_dynamic_module_callback_http_filter_increment_counter(uintptr_t filter, size_t id,
    module_buffer* label_values, size_t label_values_size, uint64_t value) { return 0; }

// stub_counted sums what the config-level increment was given for the filter config
// stub_watched, by its two label values joined with "/"; stub_commits counts commits of that
// config's scheduler. For TestDecisionCounts: other tests' filter configs are left out.
uintptr_t stub_watched;
char stub_counted_labels[32][64];
uint64_t stub_counted[32];
size_t stub_counted_n;
uint64_t stub_commits;

int envoy_dynamic_module_callback_http_filter_config_increment_counter(uintptr_t config, size_t id,
    module_buffer* label_values, size_t label_values_size, uint64_t value) {
	char key[64];
	if (config != stub_watched) {
		return 0;
	}
	if (label_values_size != 2) {
		return 1;
	}
	snprintf(key, sizeof key, "%.*s/%.*s", (int)label_values[0].length, (const char*)label_values[0].ptr,
	    (int)label_values[1].length, (const char*)label_values[1].ptr);
	for (size_t i = 0; i < stub_counted_n; i++) {
		if (strcmp(stub_counted_labels[i], key) == 0) {
			stub_counted[i] += value;
			return 0;
		}
	}
	if (stub_counted_n < 32) {
		strcpy(stub_counted_labels[stub_counted_n], key);
		stub_counted[stub_counted_n++] = value;
	}
	return 0;
}
// A stub scheduler is its filter config's pointer.
uintptr_t envoy_dynamic_module_callback_http_filter_config_scheduler_new(uintptr_t config) { return config; }
void envoy_dynamic_module_callback_http_filter_config_scheduler_commit(uintptr_t scheduler, uint64_t event_id) {
	if (scheduler == stub_watched) {
		__atomic_add_fetch(&stub_commits, 1, __ATOMIC_SEQ_CST);
	}
}
void envoy_dynamic_module_callback_http_filter_config_scheduler_delete(uintptr_t scheduler) {}
