import FuzzDriver
import FuzzHarnesses

// One input: everything is in FuzzHarness.config (shared with the corpus replay test). The runtime's own main also
// calls this symbol, hence its C name.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzHarness.config.run(fuzzInput(data, size))
    return 0
}

runFuzzer(fuzzOneInput)
