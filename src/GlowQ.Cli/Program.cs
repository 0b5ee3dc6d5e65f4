using GlowQ.Cli;

return GlowQCommandLine.Run(args, Console.Out, Console.Error);
