package session

import "strings"

// IsUUID reports whether s is a UUID in its 8-4-4-4-12 hex form, in either
// letter case (Zod's uuid()).
func IsUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// NormalizeID returns the UUID s in lower case, the one form the scripts
// and keys use, and whether s is a UUID at all. Clients send either case
// (Swift's uuidString is upper case); without this, AD7C… and ad7c… would
// be two sessions. A lower-case id is returned as it is, without a copy.
func NormalizeID(s string) (string, bool) {
	if !IsUUID(s) {
		return s, false
	}
	return strings.ToLower(s), true
}
