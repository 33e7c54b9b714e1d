//go:build !race

package idp_test

const raceEnabled = false
