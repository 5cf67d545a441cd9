package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"os"
	"strings"
	"time"
)

// The defaults of ACME's Storage and RenewCheck as dlb's flags set them.
const (
	// DefaultStorage is where certificates are kept: a volume in the
	// compose example.
	DefaultStorage = "/var/lib/dlb/acme"
	// DefaultRenewCheck is how often certificates are checked for renewal.
	DefaultRenewCheck = 10 * time.Minute
)

// FieldError says which of the certificates' settings is wrong: the field
// (Email, CA, RenewCheck, Profile, Storage; Cert, Key or Roots for a file),
// its value, and what would be accepted. Whoever reads the settings from
// flags maps Field to the flag.
type FieldError struct {
	Field, Value, Want string
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Want) }

// Check checks an ACME account's settings (Email set): the e-mail address,
// the CA's directory URL, the renewal check's period and the profile's
// name. Each error is a *FieldError.
func (a ACME) Check() error {
	if m, err := mail.ParseAddress(a.Email); err != nil || m.Address != a.Email {
		return &FieldError{"Email", a.Email, "not an e-mail address (e.g. admin@example.com); the CA writes to it about expiring certificates"}
	}
	if u, err := url.Parse(a.CA); err != nil || u.Scheme != "https" || u.Host == "" {
		return &FieldError{"CA", a.CA, "not an ACME directory URL: use https://…/directory, e.g. " + LetsEncrypt}
	}
	if a.RenewCheck < time.Second {
		return &FieldError{"RenewCheck", a.RenewCheck.String(), "must be at least 1s"}
	}
	if a.Profile != "" && !validProfile(a.Profile) {
		return &FieldError{"Profile", a.Profile, "not a profile name (letters, digits, '.', '_' and '-'), e.g. shortlived"}
	}
	return nil
}

// SetChallenges turns the challenge types off but the one named: http-01,
// tls-alpn-01, or all (both stay on). It reports whether the name is one
// of these.
func (a *ACME) SetChallenges(name string) bool {
	switch name {
	case "all":
	case "http-01":
		a.NoTLSALPN01 = true
	case "tls-alpn-01":
		a.NoHTTP01 = true
	default:
		return false
	}
	return true
}

// validProfile reports whether p looks like an ACME profile name.
func validProfile(p string) bool {
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return len(p) <= 64
}

// CheckStorage makes sure dir is a directory the Keeper can write in,
// creating it if need be. The error is a *FieldError of Storage.
func CheckStorage(dir string) error {
	if dir == "" {
		return &FieldError{"Storage", dir, "give a directory (a volume, so certificates survive restarts)"}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return &FieldError{"Storage", dir, fmt.Sprintf("cannot create it (%v); give a writable directory (mount a volume there)", err)}
	}
	f, err := os.CreateTemp(dir, ".dlb-write-check-*")
	if err != nil {
		return &FieldError{"Storage", dir, fmt.Sprintf("cannot write in it (%v); give a writable directory (mount a volume there)", err)}
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// LoadKeyPair reads a PEM certificate (chain) and its private key, for
// Options.Default: TLS 1.2 or later, HTTP/2 and HTTP/1.1 offered by ALPN
// (the server adds "h2" and "http/1.1" to NextProtos). The error is a
// *FieldError of Cert or Key: the file at fault.
func LoadKeyPair(certFile, keyFile string) (*tls.Config, error) {
	certPEM, err := readPEM("Cert", certFile, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	keyPEM, err := readPEM("Key", keyFile, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		if strings.HasPrefix(err.Error(), "x509:") {
			return nil, &FieldError{"Cert", certFile, fmt.Sprintf("not a valid certificate: %v", err)}
		}
		if strings.Contains(err.Error(), "does not match") {
			return nil, &FieldError{"Key", keyFile, "is not the private key of --tls-cert " + certFile + " (give the key the certificate was made for)"}
		}
		return nil, &FieldError{"Key", keyFile, fmt.Sprintf("unusable with --tls-cert %s: %v", certFile, err)}
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// ReadRoots reads a PEM file of root certificates (ACME.Roots). The error
// is a *FieldError of Roots.
func ReadRoots(file string) (*x509.CertPool, error) {
	b, err := readPEM("Roots", file, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, &FieldError{"Roots", file, fmt.Sprintf("not a valid certificate: %v", err)}
		}
		pool.AddCert(cert)
	}
	return pool, nil
}

// readPEM reads the PEM file of field and checks that it holds a block
// whose type ends with kind ("CERTIFICATE", or "PRIVATE KEY" for PKCS#8,
// RSA and EC keys).
func readPEM(field, file, kind string) ([]byte, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		why := err.Error()
		var pe *os.PathError
		if errors.As(err, &pe) {
			why = pe.Err.Error()
		}
		return nil, &FieldError{field, file, fmt.Sprintf("cannot read it (%s); give a readable PEM file (mount it into dlb's container)", why)}
	}
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, &FieldError{field, file, fmt.Sprintf("holds no PEM %s block (want -----BEGIN %s-----)", kind, kind)}
		}
		if strings.HasSuffix(block.Type, kind) {
			return b, nil
		}
	}
}
