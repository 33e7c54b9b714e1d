package main

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
)

// hostCarries reports, as an error, that the Envoy binary this library is loaded into does
// not carry version, the ABI version the module was built for. Envoy 1.40 compares a
// module's version with its own but only warns on a mismatch, even for a version it has never
// heard of (checked: a library reporting v9.9.9 loads and runs), and a changed signature is
// never detected: the module would corrupt memory silently. Envoy keeps its version as a C
// string constant, so the module looks for that string, NUL-delimited, in the executable.
func hostCarries(version string) error {
	const exe = "/proc/self/exe"
	f, err := os.Open(exe)
	if err != nil {
		return fmt.Errorf("cannot check the host's dynamic-module ABI (%v): refusing to load", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 || fi.Size() != int64(int(fi.Size())) {
		return fmt.Errorf("cannot check the host's dynamic-module ABI (%s: size unknown): refusing to load", exe)
	}
	// Mapped, not read: the pages come from the page cache and go back with the mapping.
	data, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_PRIVATE)
	if err != nil {
		return fmt.Errorf("cannot check the host's dynamic-module ABI (mmap %s: %v): refusing to load", exe, err)
	}
	defer syscall.Munmap(data)
	if !bytes.Contains(data, []byte("\x00"+version+"\x00")) {
		name, _ := os.Readlink(exe)
		return fmt.Errorf("built for Envoy's dynamic-module ABI %s, which this Envoy (%s) does not carry: "+
			"rebuild the module (make module) for this Envoy's version (docs/in-process.md)", version, name)
	}
	return nil
}
