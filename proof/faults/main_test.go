package faults_test

import (
	"testing"

	"github.com/fredcode/fredtel/internal/testing/testkit"
)

func TestMain(m *testing.M) { testkit.Main(m) }
