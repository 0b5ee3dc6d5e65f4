namespace GlowQ.Kernels;

/// <summary>
/// Marks a static kernel method that ships: the PTX compiler (build/GlowQ.PtxCompiler) compiles every marked method
/// to PTX for the runtime, and the launch-ABI tests check the runtime's parameter packing against it.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false, Inherited = false)]
public sealed class GpuKernelAttribute : Attribute
{
}
