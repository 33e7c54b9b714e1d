package envoy

import (
	"debug/elf"
	"os"
	"regexp"
	"testing"
)

// TestModuleCallbacksExported: every Envoy callback the module declares (envoy/module/abi.h)
// is exported by the Envoy binary the tests run. The library links with unresolved symbols
// allowed, so a name Envoy lacks would only show when Envoy loads it (and calls it).
func TestModuleCallbacksExported(t *testing.T) {
	header, err := os.ReadFile("module/abi.h")
	if err != nil {
		t.Fatal(err)
	}
	declared := regexp.MustCompile(`\b(envoy_dynamic_module_callback_\w+)\(`).FindAllStringSubmatch(string(header), -1)
	if len(declared) < 19 {
		t.Fatalf("module/abi.h declares %d callbacks, want at least the 19 the module calls", len(declared))
	}
	f, err := elf.Open(envoyBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, s := range syms {
		if s.Section != elf.SHN_UNDEF && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			exported[s.Name] = true
		}
	}
	for _, d := range declared {
		if !exported[d[1]] {
			t.Errorf("module/abi.h declares %s; the Envoy binary (%s) does not export it", d[1], envoyVersion)
		}
	}
}
