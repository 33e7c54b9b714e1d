package main

// The C side of the module: hand-written declarations of the parts of Envoy's dynamic-module
// ABI (source/extensions/dynamic_modules/abi/abi.h) that the filter uses, and the event
// hooks Envoy resolves by name. Envoy cannot check a signature: a wrong declaration here
// corrupts memory silently, so each one was checked against Envoy 1.40.0 (see
// docs/in-process.md, "The ABI") and is exercised by the end-to-end tests in envoy/.
//
// Pointers are uintptr_t on both sides (void* in Envoy's header; the same register on
// amd64 and arm64). Buffers are {pointer, length} pairs passed by value. Every hook goes
// through guard (hooks.go): a Go panic must never unwind into Envoy.

/*
#cgo linux LDFLAGS: -Wl,--unresolved-symbols=ignore-all
#cgo darwin LDFLAGS: -Wl,-undefined,dynamic_lookup
#include "abi.h"
#include "stream.h"
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"runtime/cgo"
	"unsafe"
)

// abiVersion is what envoy_dynamic_module_on_program_init returns: the ABI version string
// Envoy 1.40.0 carries (strings(1) on its binary shows "v0.2.0" beside the dynamic-module
// loader's messages). Envoy 1.40 only warns when a module reports another version, so the
// module checks the host itself (hostCarries). A variable, so that a test can build a
// library for another version: -ldflags "-X main.abiVersion=...".
var abiVersion = "v0.2.0"

// Status values of the request-headers hook (FilterHeadersStatus in envoy/http/filter.h).
const (
	statusContinue      = 0
	statusStopIteration = 1
)

// envoyBufferString copies an Envoy-owned buffer: Envoy frees it after the hook returns.
func envoyBufferString(b C.envoy_buffer) string {
	if b.ptr == nil || b.length == 0 {
		return ""
	}
	return C.GoStringN(b.ptr, C.int(b.length))
}

// moduleBuffer points at s for the length of one callback; the caller keeps s alive until
// the call returns (runtime.KeepAlive).
func moduleBuffer(s string) C.module_buffer {
	return C.module_buffer{ptr: stringAddress(s), length: C.size_t(len(s))}
}

// setRequestHeader replaces every value of name with value.
func setRequestHeader(filter uintptr, name, value string) {
	C.envoy_dynamic_module_callback_http_set_header(C.uintptr_t(filter), C.header_type_request, moduleBuffer(name), moduleBuffer(value))
	runtime.KeepAlive(name)
	runtime.KeepAlive(value)
}

// addRequestHeader adds a value of name, beside any the request carries.
func addRequestHeader(filter uintptr, name, value string) {
	C.envoy_dynamic_module_callback_http_add_header(C.uintptr_t(filter), C.header_type_request, moduleBuffer(name), moduleBuffer(value))
	runtime.KeepAlive(name)
	runtime.KeepAlive(value)
}

// removeRequestHeader removes every value of name (a null value buffer).
func removeRequestHeader(filter uintptr, name string) {
	C.envoy_dynamic_module_callback_http_set_header(C.uintptr_t(filter), C.header_type_request, moduleBuffer(name), C.module_buffer{})
	runtime.KeepAlive(name)
}

// sendResponse answers the request locally; details shows in %RESPONSE_CODE_DETAILS%. The
// header array points at strings, so it is built in C memory: cgo forbids handing C a Go
// array of Go pointers.
func sendResponse(filter uintptr, status int, headers [][2]string, body []byte, details string) {
	size := 0
	for _, h := range headers {
		size += len(h[0]) + len(h[1])
	}
	var hp *C.module_http_header
	if len(headers) > 0 {
		hp = (*C.module_http_header)(C.calloc(C.size_t(len(headers)), C.size_t(unsafe.Sizeof(C.module_http_header{}))))
		data := (*C.char)(C.malloc(C.size_t(size + 1)))
		defer C.free(unsafe.Pointer(hp))
		defer C.free(unsafe.Pointer(data))
		hs, bytes := unsafe.Slice(hp, len(headers)), unsafe.Slice((*byte)(unsafe.Pointer(data)), size+1)
		at := 0
		for i, h := range headers {
			hs[i].key_ptr, hs[i].key_length = (*C.char)(unsafe.Pointer(&bytes[at])), C.size_t(len(h[0]))
			at += copy(bytes[at:], h[0])
			hs[i].value_ptr, hs[i].value_length = (*C.char)(unsafe.Pointer(&bytes[at])), C.size_t(len(h[1]))
			at += copy(bytes[at:], h[1])
		}
	}
	C.envoy_dynamic_module_callback_http_send_response(C.uintptr_t(filter), C.uint32_t(status), hp, C.size_t(len(headers)),
		moduleBuffer(unsafe.String(unsafe.SliceData(body), len(body))), moduleBuffer(details))
	runtime.KeepAlive(body)
	runtime.KeepAlive(details)
}

// setMetadata writes one string of the stream's dynamic metadata.
func setMetadata(filter uintptr, ns, key, value string) {
	C.envoy_dynamic_module_callback_http_set_dynamic_metadata_string(C.uintptr_t(filter), moduleBuffer(ns), moduleBuffer(key), moduleBuffer(value))
	runtime.KeepAlive(ns)
	runtime.KeepAlive(key)
	runtime.KeepAlive(value)
}

// metadataEntries holds the strings of one set of metadata writes, as Envoy reads them.
type metadataEntries = [maxMetadata]C.module_string_entry

// maxMetadata is how many keys one decision's metadata can have (filter.go, setMetadata).
const maxMetadata = 9

// setMetadataBatch writes the first n of kvs (key, value) under ns, in one call; buf is the
// caller's (an array handed to C from the stack would be allocated on every call).
func setMetadataBatch(filter uintptr, ns string, buf *metadataEntries, kvs *[maxMetadata][2]string, n int) {
	for i := range n {
		buf[i] = C.module_string_entry{key_ptr: stringAddress(kvs[i][0]), key_length: C.size_t(len(kvs[i][0])),
			value_ptr: stringAddress(kvs[i][1]), value_length: C.size_t(len(kvs[i][1]))}
	}
	C.envoy_dynamic_module_callback_http_set_dynamic_metadata_string_batch(C.uintptr_t(filter), moduleBuffer(ns), &buf[0], C.size_t(n))
	runtime.KeepAlive(ns)
	runtime.KeepAlive(kvs)
}

func stringAddress(s string) C.uintptr_t {
	return C.uintptr_t(uintptr(unsafe.Pointer(unsafe.StringData(s))))
}

// newScheduler must be called on the stream's worker thread; the scheduler may be
// committed from any thread and must be deleted exactly once.
func newScheduler(filter uintptr) uintptr {
	return uintptr(C.envoy_dynamic_module_callback_http_filter_scheduler_new(C.uintptr_t(filter)))
}

func commitScheduler(scheduler uintptr, event uint64) {
	C.envoy_dynamic_module_callback_http_filter_scheduler_commit(C.uintptr_t(scheduler), C.uint64_t(event))
}

func deleteScheduler(scheduler uintptr) {
	C.envoy_dynamic_module_callback_http_filter_scheduler_delete(C.uintptr_t(scheduler))
}

// defineCounter defines a counter with labels in Envoy's stats, under the filter config
// config; it answers the counter's id.
func defineCounter(config uintptr, name string, labels ...string) (uint, error) {
	var id C.size_t
	names := make([]C.module_buffer, len(labels)+1) // never empty: &names[0] must exist
	for i, l := range labels {
		names[i] = moduleBuffer(l)
	}
	r := C.envoy_dynamic_module_callback_http_filter_config_define_counter(C.uintptr_t(config),
		moduleBuffer(name), &names[0], C.size_t(len(labels)), &id)
	runtime.KeepAlive(name)
	runtime.KeepAlive(labels)
	if r != 0 {
		return 0, fmt.Errorf("define counter %s: metrics result %d", name, int(r))
	}
	return uint(id), nil
}

// incrementCounter adds one to counter id, defined with no labels.
func incrementCounter(filter uintptr, id uint) {
	var none C.module_buffer // a valid address for a list of no label values
	C.envoy_dynamic_module_callback_http_filter_increment_counter(C.uintptr_t(filter), C.size_t(id), &none, 0, 1)
}

// configIncrementCounter2 adds value to counter id of the filter config config, defined with
// two labels, for these values; main thread only.
func configIncrementCounter2(config uintptr, id uint, buf *[2]C.module_buffer, value1, value2 string, value uint64) {
	buf[0], buf[1] = moduleBuffer(value1), moduleBuffer(value2)
	C.envoy_dynamic_module_callback_http_filter_config_increment_counter(C.uintptr_t(config), C.size_t(id), &buf[0], C.size_t(len(buf)), C.uint64_t(value))
	runtime.KeepAlive(value1)
	runtime.KeepAlive(value2)
}

func newConfigScheduler(config uintptr) uintptr {
	return uintptr(C.envoy_dynamic_module_callback_http_filter_config_scheduler_new(C.uintptr_t(config)))
}

func commitConfigScheduler(scheduler uintptr, event uint64) {
	C.envoy_dynamic_module_callback_http_filter_config_scheduler_commit(C.uintptr_t(scheduler), C.uint64_t(event))
}

func deleteConfigScheduler(scheduler uintptr) {
	C.envoy_dynamic_module_callback_http_filter_config_scheduler_delete(C.uintptr_t(scheduler))
}

// labelValues holds a counter's two label values as Envoy reads them.
type labelValues = [2]C.module_buffer

// peerCertificateDigest answers the hex SHA-256 of the client certificate on the stream's
// TLS connection, or "" without one; on the stream's worker thread, inside a hook.
func peerCertificateDigest(filter uintptr) string {
	var b C.envoy_buffer
	if !C.envoy_dynamic_module_callback_http_filter_get_attribute_string(C.uintptr_t(filter),
		C.attribute_connection_sha256_peer_certificate_digest, &b) {
		return ""
	}
	return envoyBufferString(b)
}

// envoyWorkers is Envoy's number of worker threads; call it on the main thread only (the
// config hook).
func envoyWorkers() int {
	return int(C.envoy_dynamic_module_callback_get_concurrency())
}

func continueDecoding(filter uintptr) {
	C.envoy_dynamic_module_callback_http_filter_continue_decoding(C.uintptr_t(filter))
}

// The event hooks that need Go. Envoy 1.40 resolves every envoy_dynamic_module_on_http_*
// hook by name when it loads an HTTP filter and refuses the filter if one is missing; the
// ones that need no Go are in C (hooks.c, stream.c), where Envoy calls them without entering
// the Go runtime. The module's pointers that Envoy keeps are cgo.Handle values or C memory,
// never Go pointers.

// envoy_dynamic_module_on_program_init runs once, when Envoy loads the library. A nil
// answer makes Envoy refuse the module ("envoy_dynamic_module_on_program_init returned
// null"), after the module has said why on stderr.
//
//export envoy_dynamic_module_on_program_init
func envoy_dynamic_module_on_program_init() (version *C.char) {
	defer recoverPanic("program_init")
	if err := hostCarries(abiVersion); err != nil {
		fmt.Fprintf(os.Stderr, "jwt-authz module: %v\n", err)
		return nil
	}
	return C.CString(abiVersion) // lives as long as the process, as Envoy expects
}

//export envoy_dynamic_module_on_http_filter_config_new
func envoy_dynamic_module_on_http_filter_config_new(envoyConfig C.uintptr_t, name C.envoy_buffer, config C.envoy_buffer) (ptr C.uintptr_t) {
	defer recoverPanic("config_new")
	m, err := newModule(uintptr(envoyConfig), envoyBufferString(config))
	if err != nil {
		// Envoy refuses a filter config the module returns no pointer for: at startup it
		// exits, on a listener update it keeps the config it has.
		fmt.Fprintf(os.Stderr, "jwt-authz module: filter %q: %v\n", envoyBufferString(name), err)
		return 0
	}
	return C.uintptr_t(cgo.NewHandle(m))
}

// envoy_dynamic_module_on_http_filter_config_scheduled runs on the main thread when the
// config scheduler was committed: the decision counts go to Envoy's stats (counts.go).
//
//export envoy_dynamic_module_on_http_filter_config_scheduled
func envoy_dynamic_module_on_http_filter_config_scheduled(envoyConfig C.uintptr_t, cfg C.uintptr_t, event C.uint64_t) {
	defer recoverPanic("config_scheduled")
	cgo.Handle(cfg).Value().(*module).counts.flush()
}

//export envoy_dynamic_module_on_http_filter_config_destroy
func envoy_dynamic_module_on_http_filter_config_destroy(cfg C.uintptr_t) {
	defer recoverPanic("config_destroy")
	h := cgo.Handle(cfg)
	h.Value().(*module).close()
	h.Delete()
}

// envoy_dynamic_module_on_http_filter_new and _destroy are in stream.c: a stream decided on
// the worker thread enters Go in this hook alone. Its Go filter (filter.go) is taken for the
// hook and handed back before it returns, unless the decision went off the thread: then the
// stream keeps the filter's handle until the scheduled hook and its end (destroyDeferred).
//
//export envoy_dynamic_module_on_http_filter_request_headers
func envoy_dynamic_module_on_http_filter_request_headers(envoy C.uintptr_t, s *C.jwtauthz_stream, endOfStream C.bool) (status C.int) {
	var fl *filter
	defer func() {
		if v := recover(); v != nil {
			fl.module().panicked("request_headers", v)
			fl.module().countPanic(uintptr(envoy))
			internalError(uintptr(envoy))
			status = statusStopIteration
			if fl != nil && fl.offThread && s.deferred == 0 {
				s.deferred = C.uintptr_t(fl.handle) // its end must still reach onDestroy
			}
		}
	}()
	fl = takeFilter(cgo.Handle(s.config).Value().(*module), uintptr(envoy))
	status = C.int(fl.onRequestHeaders())
	if fl.offThread {
		s.deferred = C.uintptr_t(fl.handle)
	} else {
		fl.release()
	}
	return status
}

//export envoy_dynamic_module_on_http_filter_scheduled
func envoy_dynamic_module_on_http_filter_scheduled(envoy C.uintptr_t, s *C.jwtauthz_stream, event C.uint64_t) {
	var fl *filter
	defer func() {
		if v := recover(); v != nil {
			fl.module().panicked("scheduled", v)
			fl.module().countPanic(uintptr(envoy))
			internalError(uintptr(envoy))
		}
	}()
	if s.deferred == 0 { // only an off-thread decision schedules
		return
	}
	fl = cgo.Handle(s.deferred).Value().(*filter)
	fl.onScheduled()
}

// jwtauthz_destroy_deferred ends a stream whose decision went off the worker thread; the
// destroy hook (stream.c) calls it with the filter's handle.
//
//export jwtauthz_destroy_deferred
func jwtauthz_destroy_deferred(handle C.uintptr_t) {
	defer recoverPanic("filter_destroy")
	cgo.Handle(handle).Value().(*filter).onDestroy()
}
