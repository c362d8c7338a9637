package faults_test

import (
	"testing"

	"github.com/fredcode/fredtel/internal/servertest"
)

func TestMain(m *testing.M) { servertest.Main(m) }
