package devices

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// CanonicalMAC returns s as a device's MAC address in the form the inventory and the
// configuration keep, lowercase aa:bb:cc:dd:ee:ff. It accepts what net.ParseMAC reads
// (AA-BB-CC-DD-EE-FF, aabb.ccdd.eeff) around spaces. Group (multicast and broadcast)
// addresses and the all-zero address are not devices and give ErrInvalidMAC.
func CanonicalMAC(s string) (string, error) {
	s = strings.TrimSpace(s)
	hw, err := parseMAC(s)
	if err != nil {
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		return "", fmt.Errorf("%w: %s: %v", ErrInvalidMAC, strconv.Quote(s), err)
	}
	return hw.String(), nil
}

func parseMAC(s string) (net.HardwareAddr, error) {
	hw, err := net.ParseMAC(s)
	switch {
	case err != nil:
		return nil, errors.New("not like aa:bb:cc:dd:ee:ff") // net's error quotes all of s
	case len(hw) != 6:
		return nil, fmt.Errorf("%d bytes long, not 6", len(hw))
	case hw[0]&1 != 0:
		return nil, fmt.Errorf("a group (multicast or broadcast) address")
	case hw[0]|hw[1]|hw[2]|hw[3]|hw[4]|hw[5] == 0:
		return nil, fmt.Errorf("the all-zero address")
	}
	return hw, nil
}

// IsPrivate reports whether a MAC address is locally administered (the second-least
// significant bit of the first octet set): made up by the device, as phones and laptops do
// per network, rather than assigned by its maker. It is false for what is not a MAC address.
func IsPrivate(mac string) bool {
	hw, err := net.ParseMAC(strings.TrimSpace(mac))
	return err == nil && len(hw) > 0 && hw[0]&2 != 0
}
