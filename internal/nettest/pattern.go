package nettest

import (
	"bytes"
	"crypto/sha256"
	"io"
)

// Pattern is a body of N bytes generated as it is read, each byte depending
// on its position, so that a lost, repeated or moved chunk changes what
// Check sees. It is never held in memory whole.
type Pattern struct {
	N   int64
	off int64
}

func (p *Pattern) Read(b []byte) (int, error) {
	if p.off >= p.N {
		return 0, io.EOF
	}
	if rest := p.N - p.off; int64(len(b)) > rest {
		b = b[:rest]
	}
	for i := range b {
		x := p.off + int64(i)
		b[i] = byte(x ^ x>>8 ^ x>>16)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// CheckPattern reads r to its end and reports how many bytes it had and
// whether they were exactly a Pattern of n bytes.
func CheckPattern(r io.Reader, n int64) (got int64, same bool, err error) {
	h := sha256.New()
	got, err = io.Copy(h, r)
	want := sha256.New()
	io.Copy(want, &Pattern{N: n})
	return got, got == n && bytes.Equal(h.Sum(nil), want.Sum(nil)), err
}
