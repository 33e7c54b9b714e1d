package config

import (
	"strings"
	"testing"
)

func TestParseSPIFFEID(t *testing.T) {
	good := map[string][2]string{
		"spiffe://example.org":                    {"example.org", ""},
		"spiffe://example.org/ns/prod/sa/api":     {"example.org", "/ns/prod/sa/api"},
		"spiffe://cluster.local/ns/a_b/sa/x-y.z":  {"cluster.local", "/ns/a_b/sa/x-y.z"},
		"spiffe://td-1_x/Upper/Case.Path_segment": {"td-1_x", "/Upper/Case.Path_segment"},
	}
	for id, want := range good {
		td, path, err := ParseSPIFFEID(id)
		if err != nil || td != want[0] || path != want[1] {
			t.Errorf("ParseSPIFFEID(%q) = %q, %q, %v; want %q, %q", id, td, path, err, want[0], want[1])
		}
	}
	for _, id := range []string{
		"", "example.org/x", "https://example.org/x", "SPIFFE://example.org/x", "spiffe://", "spiffe:///x",
		"spiffe://Example.org/x", "spiffe://example.org:443/x", "spiffe://user@example.org/x",
		"spiffe://example.org/", "spiffe://example.org//x", "spiffe://example.org/./x", "spiffe://example.org/a/..",
		"spiffe://example.org/x?y", "spiffe://example.org/x#y", "spiffe://example.org/%41",
	} {
		if td, path, err := ParseSPIFFEID(id); err == nil {
			t.Errorf("ParseSPIFFEID(%q) = %q, %q; want an error", id, td, path)
		}
	}
}

// FuzzParseSPIFFEID: whatever parses puts itself back together and stays in the alphabet.
func FuzzParseSPIFFEID(f *testing.F) {
	for _, s := range []string{"spiffe://example.org/ns/x", "spiffe://a", "spiffe://a/../b", "spiffe://A/b", "spiffe://a//"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		td, path, err := ParseSPIFFEID(id)
		if err != nil {
			return
		}
		if "spiffe://"+td+path != id || strings.Contains(path, "//") || strings.ContainsAny(td, "/:@") {
			t.Fatalf("ParseSPIFFEID(%q) = %q, %q", id, td, path)
		}
	})
}

func TestIssuerTemplate(t *testing.T) {
	prefix, suffix, ok, err := SplitIssuerTemplate("https://login.microsoftonline.com/{tenantid}/v2.0")
	if err != nil || !ok || prefix != "https://login.microsoftonline.com/" || suffix != "/v2.0" {
		t.Fatalf("SplitIssuerTemplate(entra) = %q, %q, %v, %v", prefix, suffix, ok, err)
	}
	for iss, want := range map[string]string{
		"https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0": "72f988bf-86f1-41af-91ab-2d7cd011db47",
		"https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0":              "contoso.onmicrosoft.com",
		"https://login.microsoftonline.com/a/b/v2.0":                                  "",
		"https://login.microsoftonline.com//v2.0":                                     "",
		"https://login.microsoftonline.com/v2.0":                                      "",
		"https://login.microsoftonline.com/x/v2.0/":                                   "",
		"https://login.microsoftonline.com/x?y/v2.0":                                  "",
	} {
		got, ok := MatchIssuerTemplate(prefix, suffix, iss)
		if ok != (want != "") || got != want && want != "" {
			t.Errorf("MatchIssuerTemplate(%q) = %q, %v; want %q", iss, got, ok, want)
		}
	}
	if _, _, ok, err := SplitIssuerTemplate("https://accounts.google.com"); ok || err != nil {
		t.Errorf("SplitIssuerTemplate(no placeholder) = %v, %v; want false, nil", ok, err)
	}
}

// FuzzIssuerTemplate: a template that splits matches exactly the issuers made by putting a
// valid tenant id in its placeholder.
func FuzzIssuerTemplate(f *testing.F) {
	f.Add("https://login.microsoftonline.com/{tenantid}/v2.0", "contoso")
	f.Add("https://x/{t}", "a/b")
	f.Add("https://x/{}{}", "")
	f.Fuzz(func(t *testing.T, template, tenant string) {
		prefix, suffix, ok, err := SplitIssuerTemplate(template)
		if err != nil || !ok {
			return
		}
		got, matched := MatchIssuerTemplate(prefix, suffix, prefix+tenant+suffix)
		if matched != validTenant(tenant) || matched && got != tenant {
			t.Fatalf("template %q, tenant %q: MatchIssuerTemplate = %q, %v", template, tenant, got, matched)
		}
	})
}
