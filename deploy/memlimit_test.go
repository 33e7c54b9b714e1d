package deploy

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// checkMemoryLimit: the container tells the Go runtime its memory limit (GOMEMLIMIT from
// the container's own limits.memory through resourceFieldRef; the runtime reads the CPU
// limit from the cgroup by itself, but not the memory limit), and that limit holds a full
// token cache: at least what jwt-authz would derive from cache.max_bytes without it, 1.5 ×
// max_bytes + 32 MiB (internal/gctune.DefaultMemoryLimit).
func checkMemoryLimit(t *testing.T, c corev1.Container, configYAML string) {
	t.Helper()
	var env *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "GOMEMLIMIT" {
			env = &c.Env[i]
		}
	}
	switch {
	case env == nil:
		t.Errorf("container %s: no GOMEMLIMIT", c.Name)
	case env.Value != "" || env.ValueFrom == nil || env.ValueFrom.ResourceFieldRef == nil:
		t.Errorf("container %s: GOMEMLIMIT = %+v, want valueFrom.resourceFieldRef", c.Name, env)
	default:
		ref := env.ValueFrom.ResourceFieldRef
		if ref.Resource != "limits.memory" || (ref.ContainerName != "" && ref.ContainerName != c.Name) {
			t.Errorf("container %s: GOMEMLIMIT from %+v, want this container's limits.memory", c.Name, ref)
		}
		if d := ref.Divisor; !d.IsZero() && d.Value() != 1 {
			t.Errorf("container %s: GOMEMLIMIT divisor %s, want bytes (GOMEMLIMIT without a unit is bytes)", c.Name, d.String())
		}
	}
	// Without limits.memory the reference yields the node's allocatable memory.
	limit, ok := c.Resources.Limits[corev1.ResourceMemory]
	if !ok {
		t.Fatalf("container %s: no limits.memory", c.Name)
	}
	var cfg struct {
		Cache struct {
			Enabled  *bool `json:"enabled"`
			MaxBytes int64 `json:"max_bytes"`
		} `json:"cache"`
	}
	if err := yaml.Unmarshal([]byte(configYAML), &cfg); err != nil {
		t.Fatalf("config: %v", err)
	}
	if cfg.Cache.Enabled != nil && !*cfg.Cache.Enabled {
		return
	}
	maxBytes := cfg.Cache.MaxBytes
	if maxBytes == 0 {
		maxBytes = 64 << 20 // config.DefaultCacheBytes
	}
	need := resource.NewQuantity(maxBytes+maxBytes/2+32<<20, resource.BinarySI)
	if limit.Cmp(*need) < 0 {
		t.Errorf("container %s: limits.memory %s, want at least %s for a full cache (max_bytes %d)", c.Name, limit.String(), need.String(), maxBytes)
	}
}
