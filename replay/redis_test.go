package replay

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwt-authz/jwt-authz/internal/redistest"
)

// TestRedis runs FirstUse against a real redis-server: a key is new once, for every
// replica (two stores on one server), and again after its ttl.
func TestRedis(t *testing.T) {
	addr := redistest.Start(t)
	ctx := context.Background()
	a, b := NewRedis(Options{Address: addr}), NewRedis(Options{Address: addr, DB: 3})
	a2 := NewRedis(Options{Address: addr, Timeout: time.Second})
	defer a.Close()
	if err := a.Ping(ctx); err != nil {
		t.Fatalf("Ping() = %v", err)
	}
	for _, step := range []struct {
		s    *Redis
		key  string
		want bool
	}{
		{a, "k1", true}, {a, "k1", false}, {a2, "k1", false}, {a2, "k2", true},
		{b, "k1", true}, // another database
	} {
		got, err := step.s.FirstUse(ctx, step.key, time.Minute)
		if err != nil || got != step.want {
			t.Errorf("FirstUse(%q) = %v, %v, want %v", step.key, got, err, step.want)
		}
	}
	if ok, err := a.FirstUse(ctx, "short", 50*time.Millisecond); !ok || err != nil {
		t.Fatalf("FirstUse(short) = %v, %v", ok, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ok, _ := a.FirstUse(ctx, "short", time.Minute); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("FirstUse(short) still false 5s after its 50ms ttl")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Many concurrent first uses of one key: exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if ok, err := a.FirstUse(ctx, "race", time.Minute); err == nil && ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if n := wins.Load(); n != 1 {
		t.Errorf("50 concurrent FirstUse(race): %d won, want 1", n)
	}
}

func TestRedisPassword(t *testing.T) {
	addr := redistest.Start(t, "--requirepass", "s3cret-password")
	ctx := context.Background()
	if ok, err := NewRedis(Options{Address: addr, Password: "s3cret-password"}).FirstUse(ctx, "k", time.Minute); !ok || err != nil {
		t.Errorf("FirstUse with the password = %v, %v, want true", ok, err)
	}
	_, err := NewRedis(Options{Address: addr, Password: "wrong"}).FirstUse(ctx, "k2", time.Minute)
	if !errors.Is(err, ErrProtocol) {
		t.Errorf("FirstUse with a wrong password = %v, want ErrProtocol", err)
	}
	if err != nil && strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error %q quotes the password", err)
	}
	if _, err := NewRedis(Options{Address: addr}).FirstUse(ctx, "k3", time.Minute); err == nil {
		t.Error("FirstUse without the password succeeded")
	}
}

func TestRedisDown(t *testing.T) {
	addr := redistest.Start(t)
	s := NewRedis(Options{Address: addr, Timeout: 200 * time.Millisecond})
	if _, err := s.FirstUse(context.Background(), "k", time.Minute); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Nothing listens on a port just freed: the store must answer an error, not "new".
	dead := NewRedis(Options{Address: "127.0.0.1:1", Timeout: 200 * time.Millisecond})
	if ok, err := dead.FirstUse(context.Background(), "k", time.Minute); err == nil || ok {
		t.Errorf("FirstUse on a dead store = %v, %v, want an error", ok, err)
	}
}
