package extauthz

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protowire"
)

// The server writes CheckResponses as protobuf bytes, appended from pieces: what depends
// only on the config (denials, removal lists, rule and provider names) is encoded once
// when the Policy is built, what depends on the token (its upstream headers) once when it
// is verified, and only the few per-request values are encoded per request. Tests decode
// every response with proto.Unmarshal and compare it with the expected message.

// Field numbers of the CheckResponse parts the server writes (external_auth.proto,
// base.proto, struct.proto); a test checks them against the descriptors.
const (
	fieldRespStatus         = 1 // CheckResponse.status
	fieldRespOK             = 3 // CheckResponse.ok_response
	fieldRespMetadata       = 4 // CheckResponse.dynamic_metadata
	fieldOKHeaders          = 2 // OkHttpResponse.headers
	fieldOKHeadersToRemove  = 5 // OkHttpResponse.headers_to_remove
	fieldOKQueryToRemove    = 8 // OkHttpResponse.query_parameters_to_remove
	fieldOptionHeader       = 1 // HeaderValueOption.header
	fieldOptionAppend       = 2 // HeaderValueOption.append
	fieldOptionAppendAction = 3 // HeaderValueOption.append_action
	fieldStructFields       = 1 // Struct.fields
	fieldValueString        = 3 // Value.string_value
)

// wireStatusOK is CheckResponse.status = google.rpc.Status{code: OK}: an empty message,
// present (a missing status would also allow, but explicit is the contract).
var wireStatusOK = protowire.AppendVarint(protowire.AppendTag(nil, fieldRespStatus, protowire.BytesType), 0)

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func sizeString(num protowire.Number, s string) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(len(s))
}

// appendMessageHeader starts a length-delimited field of size bytes.
func appendMessageHeader(b []byte, num protowire.Number, size int) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(size))
}

func sizeMessage(num protowire.Number, size int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(size)
}

// appendUpstreamHeader appends OkHttpResponse.headers: key = value with append = false
// and OVERWRITE_IF_EXISTS_OR_ADD, which replaces a client's copy on every Envoy from 1.36
// to 1.40 (envoy-extauthz.md §2.1).
func appendUpstreamHeader(b []byte, key, value string) []byte {
	hv := sizeString(1, key) + sizeString(2, value)
	opt := sizeMessage(fieldOptionHeader, hv) +
		sizeMessage(fieldOptionAppend, 0) + // BoolValue{value: false}
		protowire.SizeTag(fieldOptionAppendAction) + protowire.SizeVarint(uint64(corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD))
	b = appendMessageHeader(b, fieldOKHeaders, opt)
	b = appendMessageHeader(b, fieldOptionHeader, hv)
	b = appendString(b, 1, key)
	b = appendString(b, 2, value)
	b = appendMessageHeader(b, fieldOptionAppend, 0)
	b = protowire.AppendTag(b, fieldOptionAppendAction, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD))
}

// appendMetadataEntry appends one Struct.fields entry: key = string value.
func appendMetadataEntry(b []byte, key, value string) []byte {
	v := sizeString(fieldValueString, value)
	b = appendMessageHeader(b, fieldStructFields, sizeString(1, key)+sizeMessage(2, v))
	b = appendString(b, 1, key)
	b = appendMessageHeader(b, 2, v)
	return appendString(b, fieldValueString, value)
}

func sizeMetadataEntry(key, value string) int {
	v := sizeString(fieldValueString, value)
	return sizeMessage(fieldStructFields, sizeString(1, key)+sizeMessage(2, v))
}

func metadataEntry(key, value string) []byte { return appendMetadataEntry(nil, key, value) }

// removalList is headers_to_remove for names, encoded.
func removalList(names []string) []byte {
	var b []byte
	for _, n := range names {
		b = appendString(b, fieldOKHeadersToRemove, n)
	}
	return b
}
