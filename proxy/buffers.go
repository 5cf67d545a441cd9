package proxy

import "sync"

// copyBufferSize is the size of the buffers ReverseProxy copies bodies with.
const copyBufferSize = 32 << 10

// bufferPool lends ReverseProxy its copy buffers. It pools pointers to
// arrays, so that neither Get nor Put allocates: putting a slice in a
// sync.Pool would box a new slice header on every Put.
type bufferPool struct{}

var _ interface {
	Get() []byte
	Put([]byte)
} = bufferPool{}

var buffers = sync.Pool{New: func() any { return new([copyBufferSize]byte) }}

func (bufferPool) Get() []byte { return buffers.Get().(*[copyBufferSize]byte)[:] }

// Put takes back a buffer Get lent; anything else is left to the collector.
func (bufferPool) Put(b []byte) {
	if cap(b) != copyBufferSize {
		return
	}
	buffers.Put((*[copyBufferSize]byte)(b[:copyBufferSize]))
}
