//go:build !linux

package netcfg

// Gateway is only implemented on Linux; elsewhere New validates the config
// and then reports ErrUnsupported.
type Gateway struct{}

// New validates cfg and returns ErrUnsupported.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.withDefaults().validate(); err != nil {
		return nil, err
	}
	return nil, ErrUnsupported
}

func (g *Gateway) Apply() error                  { return ErrUnsupported }
func (g *Gateway) Remove() error                 { return ErrUnsupported }
func (g *Gateway) Close() error                  { return nil }
func (g *Gateway) Interfaces() map[string]string { return nil }
func (g *Gateway) QueueMode() string             { return "" }
