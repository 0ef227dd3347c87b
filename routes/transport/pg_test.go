package transport_test

import "net/url"

// pgxConfigFor returns dsn pointing at database name.
func pgxConfigFor(dsn, name string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}
