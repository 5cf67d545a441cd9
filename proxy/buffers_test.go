package proxy

import "testing"

func TestBufferPoolDoesNotAllocate(t *testing.T) {
	var pool bufferPool
	pool.Put(pool.Get()) // warm the pool
	got := testing.AllocsPerRun(1000, func() {
		b := pool.Get()
		if len(b) != copyBufferSize {
			t.Fatalf("Get: got %d bytes, want %d", len(b), copyBufferSize)
		}
		pool.Put(b)
	})
	if got != 0 {
		t.Errorf("Get+Put: got %v allocs, want 0", got)
	}
}

func TestBufferPoolIgnoresForeignBuffers(t *testing.T) {
	var pool bufferPool
	pool.Put(make([]byte, 10)) // must not panic nor be lent out
	if b := pool.Get(); len(b) != copyBufferSize {
		t.Errorf("Get after Put of a 10-byte slice: got %d bytes, want %d", len(b), copyBufferSize)
	}
}
