// Package probe is the container health check shared by the binaries: the distroless image
// has no shell or curl, so each binary can GET its own health URL (`-healthcheck URL`).
package probe

import (
	"fmt"
	"net/http"
	"time"
)

// Get fetches url and returns nil on 200 OK, an error otherwise.
func Get(url string) error {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}
