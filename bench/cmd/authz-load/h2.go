package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// checkMethod is the HTTP/2 path of the one RPC this client calls.
const checkMethod = "/envoy.service.auth.v3.Authorization/Check"

// Receive windows this client grants: large enough that the server never waits for one.
const (
	recvWindow       = 1 << 30
	recvWindowRefill = 1 << 28 // return connection credit once this much was consumed
)

// h2Conn is the least a gRPC client must do to call Check over one HTTP/2 connection, so the
// load generator's core is not what limits a benchmark: the request HEADERS block is encoded
// once (literals without indexing, so it never depends on HPACK state), messages arrive
// marshalled and framed, and a response is read only as far as grpc-status and the bytes of
// the message. It honours the server's connection send window, answers PING and SETTINGS,
// and fails every call in flight when the connection breaks. Safe for concurrent use.
type h2Conn struct {
	conn net.Conn

	wmu    sync.Mutex // serialises writes; stream ids must go out in increasing order
	bw     *bufio.Writer
	fr     *http2.Framer
	nextID uint32
	block  []byte // the HEADERS block of every request

	mu         sync.Mutex
	window     sync.Cond // signalled when sendWindow grows or the connection fails
	sendWindow int64     // connection-level credit the server has granted us
	streamMax  int64     // the server's initial stream window: the largest message we may send
	streams    map[uint32]*call
	err        error // set once the connection has failed
}

// call is one worker's request in flight; a worker reuses its call for every request.
type call struct {
	done       chan struct{}
	httpStatus string
	grpcStatus string
	grpcMsg    string
	resp       []byte // the response body: gRPC-framed message(s)
	err        error
}

func newCall() *call { return &call{done: make(chan struct{}, 1)} }

func dialH2(addr, authority string) (*h2Conn, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &h2Conn{conn: nc, nextID: 1, sendWindow: 65535, streamMax: 65535, streams: map[uint32]*call{}}
	c.window.L = &c.mu
	c.bw = bufio.NewWriterSize(nc, 64<<10)
	c.fr = http2.NewFramer(c.bw, bufio.NewReaderSize(nc, 64<<10))
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)

	var blk bytes.Buffer
	enc := hpack.NewEncoder(&blk)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", checkMethod}, {":authority", authority},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1], Sensitive: true})
	}
	c.block = blk.Bytes()

	c.bw.WriteString(http2.ClientPreface)
	c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: recvWindow},
		http2.Setting{ID: http2.SettingEnablePush, Val: 0})
	c.fr.WriteWindowUpdate(0, recvWindow-65535)
	if err := c.bw.Flush(); err != nil {
		nc.Close()
		return nil, err
	}
	go c.readLoop()
	return c, nil
}

// frameMessage prepends the gRPC length-prefixed-message header (uncompressed).
func frameMessage(msg []byte) []byte {
	out := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(out[1:5], uint32(len(msg)))
	copy(out[5:], msg)
	return out
}

// do sends one framed request on a new stream and waits for its end. It returns the
// response message, or an error for a failed stream, a non-200 or a non-zero grpc-status.
func (c *h2Conn) do(cl *call, framed []byte) ([]byte, error) {
	cl.httpStatus, cl.grpcStatus, cl.grpcMsg, cl.resp, cl.err = "", "", "", cl.resp[:0], nil
	need := int64(len(framed))
	c.mu.Lock()
	if need > c.streamMax {
		c.mu.Unlock()
		return nil, fmt.Errorf("message of %d bytes exceeds the server's stream window", need)
	}
	for c.err == nil && c.sendWindow < need {
		c.window.Wait()
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.sendWindow -= need
	c.mu.Unlock()

	c.wmu.Lock()
	id := c.nextID
	c.nextID += 2
	c.mu.Lock()
	if err := c.err; err != nil { // failed since the window check: nobody would answer
		c.mu.Unlock()
		c.wmu.Unlock()
		return nil, err
	}
	c.streams[id] = cl
	c.mu.Unlock()
	c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block, EndHeaders: true})
	c.fr.WriteData(id, true, framed)
	err := c.bw.Flush()
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
	}
	<-cl.done
	switch {
	case cl.err != nil:
		return nil, cl.err
	case cl.httpStatus != "200":
		return nil, fmt.Errorf("HTTP status %q", cl.httpStatus)
	case cl.grpcStatus != "0":
		return nil, fmt.Errorf("grpc-status %q: %s", cl.grpcStatus, cl.grpcMsg)
	case len(cl.resp) < 5:
		return nil, errors.New("response without a message")
	}
	return cl.resp[5:], nil
}

// readLoop is the only reader of the connection.
func (c *h2Conn) readLoop() {
	unacked := 0
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			c.fail(err)
			return
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			cl := c.stream(f.StreamID)
			if cl == nil {
				continue
			}
			if s := f.PseudoValue("status"); s != "" {
				cl.httpStatus = s
			}
			for _, hf := range f.RegularFields() {
				switch hf.Name {
				case "grpc-status":
					cl.grpcStatus = hf.Value
				case "grpc-message":
					cl.grpcMsg = hf.Value
				}
			}
			if f.StreamEnded() {
				c.finish(f.StreamID, nil)
			}
		case *http2.DataFrame:
			if cl := c.stream(f.StreamID); cl != nil {
				cl.resp = append(cl.resp, f.Data()...)
				if f.StreamEnded() {
					c.finish(f.StreamID, errors.New("stream ended without trailers"))
				}
			}
			if unacked += int(f.Length); unacked >= recvWindowRefill {
				c.write(func() { c.fr.WriteWindowUpdate(0, uint32(unacked)) })
				unacked = 0
			}
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			if v, ok := f.Value(http2.SettingInitialWindowSize); ok {
				c.mu.Lock()
				c.streamMax = int64(v)
				c.mu.Unlock()
			}
			c.write(func() { c.fr.WriteSettingsAck() })
		case *http2.PingFrame:
			if !f.IsAck() {
				c.write(func() { c.fr.WritePing(true, f.Data) })
			}
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 {
				c.mu.Lock()
				c.sendWindow += int64(f.Increment)
				c.window.Broadcast()
				c.mu.Unlock()
			}
		case *http2.RSTStreamFrame:
			c.finish(f.StreamID, fmt.Errorf("stream reset: %v", f.ErrCode))
		case *http2.GoAwayFrame:
			c.fail(fmt.Errorf("server sent GOAWAY: %v", f.ErrCode))
			return
		}
	}
}

func (c *h2Conn) stream(id uint32) *call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams[id]
}

func (c *h2Conn) finish(id uint32, err error) {
	c.mu.Lock()
	cl := c.streams[id]
	delete(c.streams, id)
	c.mu.Unlock()
	if cl != nil {
		cl.err = err
		cl.done <- struct{}{}
	}
}

func (c *h2Conn) write(f func()) {
	c.wmu.Lock()
	f()
	err := c.bw.Flush()
	c.wmu.Unlock()
	if err != nil {
		c.fail(err)
	}
}

// fail ends the connection and every call in flight on it.
func (c *h2Conn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = fmt.Errorf("connection: %w", err)
	}
	streams := c.streams
	c.streams = map[uint32]*call{}
	c.window.Broadcast()
	c.mu.Unlock()
	c.conn.Close()
	for _, cl := range streams {
		cl.err = c.err
		cl.done <- struct{}{}
	}
}

func (c *h2Conn) close() { c.fail(errors.New("closed")) }
