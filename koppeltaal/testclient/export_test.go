package testclient

// Handled returns what the module did so far, oldest first.
func (m *Module) Handled() []Handled {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Handled(nil), m.history...)
}
