// The default vitepress theme (self-hosted fonts, local search), plus VMX Lab's styles for the
// markdown extensions and the playground component.
import DefaultTheme from 'vitepress/theme';
import type { Theme } from 'vitepress';
import Playground from './Playground.vue';
import './custom.css';

const theme: Theme = {
  extends: DefaultTheme,
  enhanceApp({ app }) {
    app.component('Playground', Playground);
  },
};

export default theme;
