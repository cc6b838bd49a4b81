from jinja2.runtime import LoopContext, Macro, Markup, Namespace, TemplateNotFound, TemplateReference, TemplateRuntimeError, Undefined, escape, identity, internalcode, markup_join, missing, str_join
name = '_blobs.nix.j2'

def root(context, missing=missing):
    resolve = context.resolve_or_missing
    undefined = environment.undefined
    concat = environment.concat
    cond_expr_undefined = Undefined
    if 0: yield None
    l_0_config = l_0_layers = missing
    try:
        t_1 = environment.filters['nix']
    except KeyError:
        @internalcode
        def t_1(*unused):
            raise TemplateRuntimeError("No filter named 'nix' found.")
    pass
    def macro(l_1_pin, l_1_hash_attr, l_1_indent):
        t_2 = []
        if l_1_pin is missing:
            l_1_pin = undefined("parameter 'pin' was not provided", name='pin')
        if l_1_hash_attr is missing:
            l_1_hash_attr = undefined("parameter 'hash_attr' was not provided", name='hash_attr')
        if l_1_indent is missing:
            l_1_indent = undefined("parameter 'indent' was not provided", name='indent')
        pass
        t_2.extend((
            str(l_1_indent),
            'imageConfig = fetchDockerConfig {\n',
            str(l_1_indent),
            '  inherit tag registry repository imageName imageDigest;\n',
            str(l_1_indent),
            '  configDigest = ',
            str(t_1(environment.getattr(l_1_pin, 'config_digest'))),
            ';\n',
            str(l_1_indent),
            '  ',
            str(l_1_hash_attr),
            ' = ',
            str(t_1(environment.getattr(l_1_pin, 'config_hash'))),
            ';\n',
            str(l_1_indent),
            '};',
        ))
        return concat(t_2)
    context.exported_vars.add('config')
    context.vars['config'] = l_0_config = Macro(environment, macro, 'config', ('pin', 'hash_attr', 'indent'), False, False, False, context.eval_ctx.autoescape)
    def macro(l_1_pin, l_1_hash_attr, l_1_indent):
        t_3 = []
        if l_1_pin is missing:
            l_1_pin = undefined("parameter 'pin' was not provided", name='pin')
        if l_1_hash_attr is missing:
            l_1_hash_attr = undefined("parameter 'hash_attr' was not provided", name='hash_attr')
        if l_1_indent is missing:
            l_1_indent = undefined("parameter 'indent' was not provided", name='indent')
        pass
        t_3.extend((
            str(l_1_indent),
            'imageLayers = let\n',
        ))
        l_2_loop = missing
        for l_2_layer, l_2_loop in LoopContext(environment.getattr(l_1_pin, 'layers'), undefined):
            _loop_vars = {}
            pass
            t_3.extend((
                str(l_1_indent),
                '  layer',
                str(environment.getattr(l_2_loop, 'index0')),
                ' = fetchDockerLayer {\n',
                str(l_1_indent),
                '    inherit registry repository imageName;\n',
                str(l_1_indent),
                '    layerDigest = ',
                str(t_1(environment.getattr(l_2_layer, 'hex'))),
                ';\n',
                str(l_1_indent),
                '    ',
                str(l_1_hash_attr),
                ' = ',
                str(t_1(environment.getattr(l_2_layer, 'hash'))),
                ';\n',
            ))
            if environment.getattr(l_2_layer, 'foreign'):
                pass
                t_3.extend((
                    str(l_1_indent),
                    '    foreign = true;\n',
                ))
            t_3.extend((
                str(l_1_indent),
                '  };\n',
            ))
        l_2_loop = l_2_layer = missing
        t_3.extend((
            str(l_1_indent),
            'in [',
        ))
        l_2_loop = missing
        for l_2_layer, l_2_loop in LoopContext(environment.getattr(l_1_pin, 'layers'), undefined):
            _loop_vars = {}
            pass
            t_3.extend((
                ' layer',
                str(environment.getattr(l_2_loop, 'index0')),
            ))
        l_2_loop = l_2_layer = missing
        t_3.append(
            ' ];',
        )
        return concat(t_3)
    context.exported_vars.add('layers')
    context.vars['layers'] = l_0_layers = Macro(environment, macro, 'layers', ('pin', 'hash_attr', 'indent'), False, False, False, context.eval_ctx.autoescape)

blocks = {}
debug_info = '2=18&3=28&4=30&5=32&6=36&7=42&9=48&10=58&11=62&12=66&13=70&14=72&15=76&16=83&17=86&19=90&21=95'