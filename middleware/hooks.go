package middleware

// Hooks returns the running prehooks and posthooks as their constructors
// built them, so that the daemon can find hooks that offer an interface
// of their own (the operator API looks for a torrent list it can change).
func (l *Logic) Hooks() (pre, post []Hook) {
	c := l.hooks.Load()
	return unwrap(c.pre), unwrap(c.post)
}

func unwrap(hs []Hook) []Hook {
	out := make([]Hook, len(hs))
	for i, h := range hs {
		if n, ok := h.(namedHook); ok {
			h = n.Hook
		}
		out[i] = h
	}
	return out
}
