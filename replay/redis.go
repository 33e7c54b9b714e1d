// Package replay is a store of seen DPoP proof ids shared by every jwt-authz replica, on a
// Redis or Valkey server: SET key 1 NX PX ttl says, atomically and for all replicas at
// once, whether a proof was used before. It speaks the few RESP commands it needs itself
// (AUTH, SELECT, SET) rather than pull in a client library.
package replay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// ErrProtocol: the server answered something that is not RESP or not what SET answers.
var ErrProtocol = errors.New("replay: unexpected answer from the store")

// Options configure a Redis store.
type Options struct {
	Address  string // host:port
	Password string // AUTH; "" for none
	DB       int    // SELECT; 0 for the default
	// Timeout bounds one command, dial included.
	Timeout time.Duration
	// MaxIdle is how many connections are kept for reuse (default 16).
	MaxIdle int
}

// Redis is a replay store on a Redis or Valkey server. It satisfies extauthz.ReplayStore
// and is safe for concurrent use; connections are pooled.
type Redis struct {
	opts Options
	mu   sync.Mutex
	idle []*conn
}

type conn struct {
	nc net.Conn
	r  *bufio.Reader
}

// NewRedis returns a store; it connects on first use.
func NewRedis(opts Options) *Redis {
	if opts.MaxIdle == 0 {
		opts.MaxIdle = 16
	}
	if opts.Timeout == 0 {
		opts.Timeout = 200 * time.Millisecond
	}
	return &Redis{opts: opts}
}

// FirstUse records key for ttl (SET key 1 NX PX ms) and reports whether it was not there.
func (s *Redis) FirstUse(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	ms := max(ttl.Milliseconds(), 1)
	reply, err := s.do(ctx, "SET", key, "1", "NX", "PX", strconv.FormatInt(ms, 10))
	if err != nil {
		return false, err
	}
	switch reply {
	case "+OK":
		return true, nil
	case "$-1", "_": // a nil bulk string (RESP2) or null (RESP3): the key was set already
		return false, nil
	}
	return false, fmt.Errorf("SET NX: %q: %w", clip(reply), ErrProtocol)
}

// Ping checks the server answers.
func (s *Redis) Ping(ctx context.Context) error {
	reply, err := s.do(ctx, "PING")
	if err == nil && reply != "+PONG" {
		err = fmt.Errorf("PING: %q: %w", clip(reply), ErrProtocol)
	}
	return err
}

// Close closes the idle connections.
func (s *Redis) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.idle {
		c.nc.Close()
	}
	s.idle = nil
	return nil
}

// do runs one command on a pooled connection and returns the first line of its reply.
func (s *Redis) do(ctx context.Context, args ...string) (string, error) {
	deadline := time.Now().Add(s.opts.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c, err := s.get(ctx, deadline)
	if err != nil {
		return "", err
	}
	reply, err := c.roundTrip(deadline, args...)
	if err != nil {
		c.nc.Close() // a connection in an unknown state is not reused
		return "", fmt.Errorf("replay: %s %s: %w", args[0], s.opts.Address, err)
	}
	s.put(c)
	return reply, nil
}

func (s *Redis) get(ctx context.Context, deadline time.Time) (*conn, error) {
	s.mu.Lock()
	if n := len(s.idle); n > 0 {
		c := s.idle[n-1]
		s.idle = s.idle[:n-1]
		s.mu.Unlock()
		return c, nil
	}
	s.mu.Unlock()
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	nc, err := (&net.Dialer{}).DialContext(dctx, "tcp", s.opts.Address)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	c := &conn{nc: nc, r: bufio.NewReader(nc)}
	setup := [][]string{}
	if s.opts.Password != "" {
		setup = append(setup, []string{"AUTH", s.opts.Password})
	}
	if s.opts.DB != 0 {
		setup = append(setup, []string{"SELECT", strconv.Itoa(s.opts.DB)})
	}
	for _, cmd := range setup {
		reply, err := c.roundTrip(deadline, cmd...)
		if err == nil && reply != "+OK" {
			err = fmt.Errorf("%s refused: %w", cmd[0], ErrProtocol) // never quote the password
		}
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("replay: %s: %w", s.opts.Address, err)
		}
	}
	return c, nil
}

func (s *Redis) put(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.idle) >= s.opts.MaxIdle {
		c.nc.Close()
		return
	}
	s.idle = append(s.idle, c)
}

// roundTrip writes a command as a RESP array of bulk strings and reads a one-line reply
// (+simple, -error, :integer, $-1 or _); a bulk string with content is read whole.
func (c *conn) roundTrip(deadline time.Time, args ...string) (string, error) {
	if err := c.nc.SetDeadline(deadline); err != nil {
		return "", err
	}
	b := []byte("*" + strconv.Itoa(len(args)) + "\r\n")
	for _, a := range args {
		b = append(b, "$"+strconv.Itoa(len(a))+"\r\n"+a+"\r\n"...)
	}
	if _, err := c.nc.Write(b); err != nil {
		return "", err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return "", ErrProtocol
	}
	line = line[:len(line)-2]
	switch line[0] {
	case '-':
		return "", fmt.Errorf("server error %q: %w", clip(line[1:]), ErrProtocol)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n > 1<<20 {
			return "", ErrProtocol
		}
		if n >= 0 { // not expected from SET or PING, but keep the stream in step
			if _, err := c.r.Discard(n + 2); err != nil {
				return "", err
			}
		}
	}
	return line, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}
