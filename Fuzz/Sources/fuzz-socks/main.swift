import FuzzDriver
import FuzzHarnesses

// One input: everything is in FuzzHarness.socks (shared with the corpus replay test). The runtime's own main also
// calls this symbol, hence its C name.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzHarness.socks.run(fuzzInput(data, size))
    return 0
}

runFuzzer(fuzzOneInput)
