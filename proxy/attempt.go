package proxy

// Value makes the attempt the context of the request it is for: it answers
// stateKey with itself and passes every other key to the request's context.
// This saves the allocation of a context.WithValue per request.
func (a *attempt) Value(key any) any {
	if _, ok := key.(stateKey); ok {
		return a
	}
	return a.Context.Value(key)
}
