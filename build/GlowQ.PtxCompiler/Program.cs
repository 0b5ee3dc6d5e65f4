using GlowQ.PtxCompiler;

return PtxCompilerCommand.Run(args, Console.Out, Console.Error);
