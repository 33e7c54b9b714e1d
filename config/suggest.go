package config

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
)

// An unknown key is most often a typo or a singular for a plural (audience for audiences).
// yaml.v3 reports it as "field audience not found in type config.Provider", which names a Go
// type the user never sees; unknownKey says which keys are valid there and which one was
// probably meant.

// indexes are the "[0]" parts of a field path.
var indexes = regexp.MustCompile(`\[\d+\]`)

// unknownKey is the message for key, unknown in the mapping at path (the key's own path,
// "providers[0].audience").
func unknownKey(path, key string) string {
	known := keysAt(strings.TrimSuffix(path, key))
	if len(known) == 0 {
		return fmt.Sprintf("unknown key %q", key)
	}
	if near := nearest(key, known); near != "" {
		return fmt.Sprintf("unknown key %q, did you mean %q?", key, near)
	}
	return fmt.Sprintf("unknown key %q (valid here: %s)", key, strings.Join(known, ", "))
}

// keysAt lists the YAML keys of the struct at parent ("providers[0]." or ""), following the
// yaml tags of Config; nil when parent is not a struct (a map's keys are free).
func keysAt(parent string) []string {
	t := reflect.TypeFor[Config]()
	for _, name := range strings.Split(strings.TrimSuffix(indexes.ReplaceAllString(parent, ""), "."), ".") {
		if name == "" {
			continue
		}
		f, ok := fieldByKey(t, name)
		if !ok {
			return nil
		}
		t = f.Type
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for f := range t.Fields() {
		if k := yamlKey(f); k != "" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func fieldByKey(t reflect.Type, key string) (reflect.StructField, bool) {
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for f := range t.Fields() {
		if yamlKey(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func yamlKey(f reflect.StructField) string {
	k, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if k == "-" || !f.IsExported() {
		return ""
	}
	return k
}

// nearest is the known key closest to key: one that differs by a plural "s", or within an
// edit distance of a third of its length (at least 1, at most 3); "" when none is.
func nearest(key string, known []string) string {
	best, bestDist := "", 0
	for _, k := range known {
		if k == key+"s" || k+"s" == key {
			return k
		}
		d := editDistance(strings.ToLower(key), k)
		if limit := min(max(len(k)/3, 1), 3); d <= limit && (best == "" || d < bestDist) {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
