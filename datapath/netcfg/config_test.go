package netcfg

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// Marks as the fast path sets them.
const (
	testMarkMask  = 0x0f000000
	testMarkQueue = 0x01000000
	testMarkBlock = 0x02000000
)

func validConfig() Config {
	return Config{
		WAN: "wan0",
		Segments: []Segment{
			{Name: "staff", Trunk: "eth1", VLAN: 10, Admin: true,
				Gateway: []netip.Prefix{netip.MustParsePrefix("10.10.0.1/24"), netip.MustParsePrefix("fd00:10::1/64")}},
			{Name: "guest", Interface: "eth2", Guest: true,
				Gateway: []netip.Prefix{netip.MustParsePrefix("10.30.0.1/24")}},
		},
		DNSPort:    53,
		AdminPorts: []uint16{443},
		Queue:      Queue{Num: 0, Count: 2},
		MarkMask:   testMarkMask, MarkQueue: testMarkQueue, MarkBlock: testMarkBlock,
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   string // substring of the error; "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"missing wan", func(c *Config) { c.WAN = "" }, "wan interface missing"},
		{"wan name too long", func(c *Config) { c.WAN = "a-very-long-interface" }, "longer than 15"},
		{"wan name with slash", func(c *Config) { c.WAN = "eth/0" }, "forbidden character"},
		{"no segments", func(c *Config) { c.Segments = nil }, "no segments"},
		{"both interface and trunk", func(c *Config) { c.Segments[0].Interface = "eth3" }, "both an interface and a trunk"},
		{"neither interface nor trunk", func(c *Config) { c.Segments[1].Interface = "" }, "neither"},
		{"vlan without trunk", func(c *Config) { c.Segments[1].VLAN = 5 }, "both an interface and a trunk"},
		{"vlan 0", func(c *Config) { c.Segments[0].VLAN = 0 }, "outside 1-4094"},
		{"vlan 4095", func(c *Config) { c.Segments[0].VLAN = 4095 }, "outside 1-4094"},
		{"vlan 4094", func(c *Config) { c.Segments[0].VLAN = 4094 }, ""},
		{"vlan name too long", func(c *Config) { c.Segments[0].Trunk = "enp0s31f6abcd" }, "longer than 15"},
		{"trunk is wan", func(c *Config) { c.Segments[0].Trunk = "wan0" }, "is the wan"},
		{"segment on wan", func(c *Config) { c.Segments[1].Interface = "wan0" }, "already used by wan"},
		{"two segments one interface", func(c *Config) {
			c.Segments[0] = Segment{Name: "x", Interface: "eth2", Gateway: []netip.Prefix{netip.MustParsePrefix("10.1.0.1/24")}}
		}, "already used"},
		{"unnamed segment", func(c *Config) { c.Segments[0].Name = "" }, "no name"},
		{"duplicate name", func(c *Config) { c.Segments[1].Name = "staff" }, "listed twice"},
		{"guest and admin", func(c *Config) { c.Segments[1].Admin = true }, "both guest and admin"},
		{"no gateway", func(c *Config) { c.Segments[1].Gateway = nil }, "no gateway"},
		{"zero gateway", func(c *Config) { c.Segments[1].Gateway = []netip.Prefix{{}} }, "bad gateway"},
		{"multicast gateway", func(c *Config) { c.Segments[1].Gateway = []netip.Prefix{netip.MustParsePrefix("224.0.0.1/24")} }, "not a unicast"},
		{"overlapping gateways", func(c *Config) {
			c.Segments[1].Gateway = []netip.Prefix{netip.MustParsePrefix("10.10.0.254/16")}
		}, "overlaps 10.10.0.1/24"},
		{"overlapping ipv6 gateways", func(c *Config) {
			c.Segments[1].Gateway = append(c.Segments[1].Gateway, netip.MustParsePrefix("fd00:10::2/64"))
		}, "overlaps fd00:10::1/64"},
		{"dns port 0", func(c *Config) { c.DNSPort = 0 }, "dns port"},
		{"admin port 0", func(c *Config) { c.AdminPorts = []uint16{0} }, "admin port 0"},
		{"queues past 65535", func(c *Config) { c.Queue = Queue{Num: 65535, Count: 2} }, "past 65535"},
		{"last queue 65535", func(c *Config) { c.Queue = Queue{Num: 65534, Count: 2} }, ""},
		{"no mark mask", func(c *Config) { c.MarkMask = 0 }, "mask is 0"},
		{"zero queue mark", func(c *Config) { c.MarkQueue = 0 }, "non-zero"},
		{"mark outside mask", func(c *Config) { c.MarkBlock = 0x10000000 }, "outside mask"},
		{"equal marks", func(c *Config) { c.MarkBlock = c.MarkQueue }, "equal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := validConfig()
			tt.modify(&cfg)
			err := cfg.withDefaults().validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("validate() = %v, want error containing %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("validate() = %v, not ErrInvalidConfig", err)
			}
		})
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cfg := validConfig()
	cfg.WAN = ""
	if _, err := New(cfg); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New() error = %v, want ErrInvalidConfig", err)
	}
}

func TestDefaults(t *testing.T) {
	cfg := Config{}.withDefaults()
	if cfg.Table != DefaultTable || cfg.Queue.Count != 1 || cfg.Logger == nil {
		t.Errorf("defaults = table %q, queue count %d, logger %v; want %q, 1, non-nil", cfg.Table, cfg.Queue.Count, cfg.Logger, DefaultTable)
	}
}
