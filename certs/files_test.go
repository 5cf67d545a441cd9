package certs

import (
	"crypto/tls"
	"errors"
	"testing"
)

func TestLoadKeyPair(t *testing.T) {
	dir := t.TempDir()
	cert, key := writePair(t, dir, "dlb test")
	tc, err := LoadKeyPair(cert, key)
	if err != nil {
		t.Fatalf("LoadKeyPair(a good pair): %v", err)
	}
	if tc.MinVersion != tls.VersionTLS12 || len(tc.Certificates) != 1 {
		t.Errorf("LoadKeyPair = MinVersion %#x with %d certificates, want TLS 1.2 (%#x) with 1", tc.MinVersion, len(tc.Certificates), tls.VersionTLS12)
	}
	_, err = LoadKeyPair(key, key)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "Cert" || fe.Value != key {
		t.Errorf("LoadKeyPair(a key as the certificate): got %v, want a *FieldError of Cert naming %s", err, key)
	}
}
