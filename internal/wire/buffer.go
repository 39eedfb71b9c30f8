package wire

import "sync"

// Buffers hands out relay buffers of one size. A relay takes a buffer only
// while bytes are flowing and gives it back before it waits for more, so an
// idle session holds no buffer at all.
type Buffers struct {
	size int
	pool sync.Pool
}

// NewBuffers returns a pool of size-byte buffers.
func NewBuffers(size int) *Buffers {
	b := &Buffers{size: size}
	b.pool.New = func() any { s := make([]byte, size); return &s }
	return b
}

// Size is the length of every buffer this pool hands out.
func (b *Buffers) Size() int { return b.size }

// Get takes a buffer; the caller must Put it back and not keep references.
func (b *Buffers) Get() *[]byte { return b.pool.Get().(*[]byte) }

// Put returns a buffer taken with Get.
func (b *Buffers) Put(p *[]byte) { b.pool.Put(p) }
