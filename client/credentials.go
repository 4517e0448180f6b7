package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// bearer sends "authorization: Bearer <credential>" with every call.
type bearer struct {
	static string
	fn     func(context.Context) (string, error)
	// secure is false only when the caller allowed a credential over plaintext; gRPC then lets the call
	// through instead of refusing it for lack of transport security.
	secure bool
}

func (b *bearer) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	tok := b.static
	if b.fn != nil {
		var err error
		if tok, err = b.fn(ctx); err != nil {
			return nil, fmt.Errorf("client: bearer credential: %w", err)
		}
	}
	if tok == "" {
		return nil, errors.New("client: bearer credential is empty")
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

func (b *bearer) RequireTransportSecurity() bool { return b.secure }

// keyPair is a client certificate read from files, read again when either file's modification time or
// size changes, so that a certificate renewed on disk is presented at the next handshake.
type keyPair struct {
	certFile, keyFile string
	mu                sync.Mutex
	stamp             [2]fileStamp
	cert              *tls.Certificate
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

func (k *keyPair) get() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c, err1 := stampOf(k.certFile)
	kf, err2 := stampOf(k.keyFile)
	if err := errors.Join(err1, err2); err != nil {
		if k.cert != nil { // a file being replaced: keep presenting the last good pair
			return k.cert, nil
		}
		return nil, fmt.Errorf("client: client certificate: %w", err)
	}
	if k.cert != nil && k.stamp == [2]fileStamp{c, kf} {
		return k.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		if k.cert != nil { // half-written pair (certificate replaced before its key): try again next time
			return k.cert, nil
		}
		return nil, fmt.Errorf("client: client certificate: %w", err)
	}
	k.cert, k.stamp = &cert, [2]fileStamp{c, kf}
	return k.cert, nil
}
