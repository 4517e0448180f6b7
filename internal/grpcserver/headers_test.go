package grpcserver

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/metadata"
)

// rawCall sends one gRPC request with an extra header of n bytes over a hand-driven HTTP/2 connection (a
// hostile client ignores the limit the server announces, so grpc-go's own client cannot stand in) and
// reports whether the server answered the stream with a grpc-status of OK.
func rawCall(t *testing.T, addr string, n int) (ok bool, how string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(1<<20, nil)
	fr.MaxHeaderListSize = 1 << 20
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/test.Probe/Call"},
		{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"}, {"x-padding", strings.Repeat("a", n)}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	// Split the block into HEADERS and CONTINUATION frames of at most 16 KiB (the default frame size).
	b := block.Bytes()
	first := b[:min(len(b), 16384)]
	b = b[len(first):]
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndHeaders: len(b) == 0}); err != nil {
		return false, "write: " + err.Error()
	}
	for len(b) > 0 {
		chunk := b[:min(len(b), 16384)]
		b = b[len(chunk):]
		if err := fr.WriteContinuation(1, len(b) == 0, chunk); err != nil {
			return false, "write: " + err.Error()
		}
	}
	// An empty message: 1 byte uncompressed flag and a 4-byte length of zero.
	if err := fr.WriteData(1, true, []byte{0, 0, 0, 0, 0}); err != nil {
		return false, "write: " + err.Error()
	}
	for range 100 { // bounded: a handful of frames answer one call
		f, err := fr.ReadFrame()
		if err != nil {
			return false, "read: " + err.Error()
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.RSTStreamFrame:
			return false, "RST_STREAM " + f.ErrCode.String()
		case *http2.GoAwayFrame:
			return false, "GOAWAY " + f.ErrCode.String()
		case *http2.MetaHeadersFrame:
			if s := f.PseudoValue("status"); s != "" && s != "200" {
				return false, "HTTP " + s
			}
			for _, hf := range f.Fields {
				if hf.Name == "grpc-status" {
					return hf.Value == "0", "grpc-status " + hf.Value
				}
			}
		}
	}
	return false, "no answer in 100 frames"
}

func TestOversizedMetadataIsRefused(t *testing.T) {
	var handled atomic.Int64
	s, conn, _, _ := startProbe(t, &probe{do: func(context.Context) error { handled.Add(1); return nil }})
	// Precondition: a call with modest metadata goes through, by both clients.
	if ok, how := rawCall(t, s.Addr(), 1024); !ok {
		t.Fatalf("a call with 1 KiB of metadata failed: %s", how)
	}
	if err := call(metadata.AppendToOutgoingContext(t.Context(), "x-padding", strings.Repeat("a", 1024)), conn); err != nil {
		t.Fatalf("grpc call with 1 KiB of metadata: %v", err)
	}
	before := handled.Load()
	if before != 2 {
		t.Fatalf("handler ran %d times for the two small calls", before)
	}
	for _, n := range []int{DefaultMaxHeaderListBytes + 1024, 1 << 20} {
		if ok, how := rawCall(t, s.Addr(), n); ok {
			t.Errorf("%d bytes of metadata accepted (%s)", n, how)
		} else {
			t.Logf("%d bytes of metadata: %s", n, how)
		}
	}
	err := call(metadata.AppendToOutgoingContext(t.Context(), "x-padding", strings.Repeat("a", 1<<20)), conn)
	if err == nil {
		t.Error("grpc client: 1 MiB of metadata accepted")
	}
	if got := handled.Load(); got != before {
		t.Errorf("handler ran %d more times for oversized calls", got-before)
	}
	// The server still serves after refusing them.
	if err := call(t.Context(), conn); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("server unusable after oversized metadata: %v", err)
	}
}
