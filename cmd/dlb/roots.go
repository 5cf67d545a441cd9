package main

// dlb's image is FROM scratch: it has no system roots, and the ACME CA's
// own HTTPS (Let's Encrypt's directory) must still verify. These roots
// (Mozilla's) are used only when the system has none.
import _ "golang.org/x/crypto/x509roots/fallback"
