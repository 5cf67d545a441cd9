package proxy

// isTemporary reports whether an Accept error is worth another Accept.
func isTemporary(err error) bool {
	t, ok := err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}
