package faults_test

import (
	"os"
	"testing"

	"github.com/fredcode/fredtel/internal/servertest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	servertest.Cleanup()
	os.Exit(code)
}
