package gctune

import (
	"math"
	"os"
	"runtime/debug"
)

// The soft memory limit. Without one the runtime lets the heap grow to whatever GOGC (or
// the tuner) allows; with a limit it collects harder as the heap nears it. The token
// cache is the one thing that grows with traffic and it is bounded by cache.max_bytes, so
// a limit derived from that bound keeps a full cache from taking a container over its
// memory limit, while leaving the tuner in charge below it.

// memoryHeadroom is what the process needs beside the cache: code, stacks, gRPC buffers,
// the garbage of requests in flight.
const memoryHeadroom = 32 << 20

// DefaultMemoryLimit is the soft memory limit for a cache bounded at cacheMaxBytes:
// 1.5 × cacheMaxBytes (the cache's live heap plus room for the collector to work in)
// plus 32 MiB.
func DefaultMemoryLimit(cacheMaxBytes int64) int64 {
	if cacheMaxBytes <= 0 {
		return math.MaxInt64 // no bound: no limit
	}
	return cacheMaxBytes + cacheMaxBytes/2 + memoryHeadroom
}

// SetMemoryLimit sets DefaultMemoryLimit(cacheMaxBytes) unless GOMEMLIMIT is set (an
// operator's or a container's limit wins). It returns the limit in force and whether it
// was set here.
func SetMemoryLimit(cacheMaxBytes int64) (limit int64, set bool) {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		return debug.SetMemoryLimit(-1), false
	}
	limit = DefaultMemoryLimit(cacheMaxBytes)
	debug.SetMemoryLimit(limit)
	return limit, true
}
